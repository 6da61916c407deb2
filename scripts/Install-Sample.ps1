<#
.SYNOPSIS
    Installs one minifilter sample on this (test) machine, then prints the next step.

.DESCRIPTION
    Two kinds of folder can be installed:

    - A driver package made by `cargo make` on a Windows build machine
      (target\<profile>\<crate>_package, or target\<triple>\<profile>\<crate>_package): it holds
      <crate>.inf, <crate>.sys, <crate>.cat and WDRLocalTestCert.cer. The script trusts the test
      certificate on this machine (LocalMachine Root and TrustedPublisher stores, after asking),
      then installs the package with `pnputil /add-driver <inf> /install`. The package goes to the
      driver store; the service runs the driver from there.

    - A Linux-built driver (`cargo xtask build` then `cargo xtask sign`): a folder with the
      test-signed <crate>.sys and the INF source <crate>.inx from samples\<dir>\. There is no catalog, so the
      package cannot go to the driver store. The script registers the service the way the INF
      describes it instead: it copies the .sys to %windir%\System32\drivers, creates the file
      system driver service (demand start, group and FltMgr dependency from the INF) and writes the
      instance configuration (DefaultInstance, Altitude, Flags from the INF) under both Instances
      and Parameters\Instances, and SupportedFeatures at the service key and under Parameters, so
      that it works before and after Windows 11 24H2; and, as the INF does, Parameters\DemoFolder,
      the folder name the sample acts in (passthrough has none).

    pnputil exit code 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) is a success: the package is installed
    and Windows asks for a reboot; the script says so. With -WhatIf the script changes nothing and
    describes each step, including the ones after the certificate step.

    Either way, nothing is loaded: run Start-SampleDemo.ps1 next. The script refuses, changing
    nothing, when it is not elevated, when test signing is off or Secure Boot is on, or when the
    sample is already installed.

.PARAMETER Name
    The sample: passthrough, callback-data, section-context, data-scan or section-conflict.

.PARAMETER PackagePath
    The folder to install from. Without it, the script looks for the cargo-make package in
    target\release, target\debug, target\x86_64-pc-windows-msvc\{release,debug} and
    target\aarch64-pc-windows-msvc\{release,debug}, in that order.

.EXAMPLE
    .\Install-Sample.ps1 -Name data-scan

    Installs the cargo-make package target\release\rs_data_scan_package (or the first one found).

.EXAMPLE
    .\Install-Sample.ps1 -Name passthrough -PackagePath C:\drivers\passthrough

    Installs from C:\drivers\passthrough, which holds either a cargo-make package or a Linux-built
    rs_passthrough.sys with rs_passthrough.inx.

.LINK
    Start-SampleDemo.ps1
#>
[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
param(
    [Parameter(Mandatory)]
    [ValidateSet('passthrough', 'callback-data', 'section-context', 'data-scan', 'section-conflict')]
    [string]$Name,

    [string]$PackagePath
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'SampleCommon.psm1') -Force

$sample = Get-SampleInfo -Name $Name
Assert-CanProceed -Sample $sample
if (Test-SampleInstalled -Sample $sample) {
    throw "The sample is already installed (service key $($sample.ServiceKey) exists). Run .\Uninstall-Sample.ps1 -Name $Name first. Nothing was changed."
}

if (-not $PackagePath) {
    $root = Get-RepositoryRoot
    $candidates = foreach ($triple in @('', 'x86_64-pc-windows-msvc', 'aarch64-pc-windows-msvc')) {
        foreach ($profileDir in @('release', 'debug')) {
            Join-Path (Join-Path (Join-Path $root 'target') $triple) (Join-Path $profileDir "$($sample.FsName)_package")
        }
    }
    $PackagePath = $candidates | Where-Object { Test-Path -LiteralPath (Join-Path $_ $sample.InfFile) } | Select-Object -First 1
    if (-not $PackagePath) {
        throw "No cargo-make package of $($sample.Package) found (looked in: $($candidates -join '; ')). Build it with 'cargo make', or pass -PackagePath. Nothing was changed."
    }
}
$PackagePath = (Resolve-Path -LiteralPath $PackagePath).ProviderPath
$sys = Join-Path $PackagePath $sample.DriverFile
$inf = Join-Path $PackagePath $sample.InfFile
$inx = Join-Path $PackagePath $sample.InxFile
$cat = Join-Path $PackagePath "$($sample.FsName).cat"
if (-not (Test-Path -LiteralPath $sys)) {
    throw "$sys is missing. Nothing was changed."
}

if ((Test-Path -LiteralPath $inf) -and (Test-Path -LiteralPath $cat)) {
    # A cargo-make package: signed catalog, driver store.
    $cert = Join-Path $PackagePath 'WDRLocalTestCert.cer'
    if (-not (Test-Path -LiteralPath $cert)) {
        throw "$cert is missing: the package's catalog is signed with it. Nothing was changed."
    }
    if ($PSCmdlet.ShouldProcess('LocalMachine Root and TrustedPublisher certificate stores', "Trust the test certificate $cert")) {
        Import-Certificate -FilePath $cert -CertStoreLocation Cert:\LocalMachine\Root | Out-Null
        Import-Certificate -FilePath $cert -CertStoreLocation Cert:\LocalMachine\TrustedPublisher | Out-Null
    } elseif (-not $WhatIfPreference) {
        # Declined at the confirmation prompt. Under -WhatIf ShouldProcess has only described the
        # step; the simulation goes on to describe the next one.
        throw 'The test certificate was not trusted, so the package cannot be installed. Nothing was changed.'
    }
    if ($PSCmdlet.ShouldProcess($inf, 'Install the driver package (pnputil /add-driver /install)')) {
        # 3010 (reboot required) is a success: Invoke-PnpUtil says so.
        Invoke-PnpUtil -ArgumentList @('/add-driver', $inf, '/install')
    }
} elseif (Test-Path -LiteralPath $inx) {
    # A Linux-built, test-signed driver: no catalog, so no driver store. Register the service as the
    # INF describes it.
    $service = Get-InfSetting -Path $inx -Key 'ServiceName'
    if ($service -ne $sample.Service) {
        throw "$inx installs service '$service', expected '$($sample.Service)'. Nothing was changed."
    }
    $group = Get-InfSetting -Path $inx -Key 'LoadOrderGroup'
    $instance = Get-InfSetting -Path $inx -Key 'DefaultInstance'
    $altitude = Get-InfSetting -Path $inx -Key 'Instance1.Altitude'
    $flags = [int](Get-InfSetting -Path $inx -Key 'Instance1.Flags')
    $features = [int](Get-InfSetting -Path $inx -Key 'SupportedFeatures')
    # The folder name the driver acts in (Parameters\DemoFolder, read in DriverEntry); passthrough,
    # which acts on every file, has none.
    $demoFolder = Select-String -LiteralPath $inx -Pattern '^\s*DemoFolder\s*=\s*"([^"]*)"' |
        ForEach-Object { $_.Matches[0].Groups[1].Value } | Select-Object -First 1
    # The INF's down-level install section states the driver's minimum build
    # ([DefaultInstall.NT$ARCH$.10.0...<build>]); pnputil would refuse the package below it, so
    # this path refuses too.
    $minimumBuild = Select-String -LiteralPath $inx -Pattern '^\s*\[DefaultInstall\.NT\$ARCH\$\.10\.0\.\.\.(\d+)\]' |
        ForEach-Object { [int]$_.Matches[0].Groups[1].Value } | Sort-Object | Select-Object -First 1
    $thisBuild = [Environment]::OSVersion.Version.Build
    if ($minimumBuild -and $thisBuild -lt $minimumBuild) {
        throw "$inx needs Windows build $minimumBuild or later; this is build $thisBuild. Nothing was changed."
    }
    $signature = Get-AuthenticodeSignature -LiteralPath $sys
    if ($null -eq $signature.SignerCertificate) {
        throw "$sys is not signed. Sign it with 'cargo xtask sign' on the build machine first. Nothing was changed."
    }
    $target = Join-Path $env:windir "System32\drivers\$($sample.DriverFile)"
    if ($PSCmdlet.ShouldProcess($sample.Service, "Register the file system driver service for $target (no driver store: there is no catalog)")) {
        Copy-Item -LiteralPath $sys -Destination $target -Force
        Invoke-NativeTool -FilePath 'sc.exe' -ArgumentList @('create', $sample.Service, 'type=', 'filesys', 'start=', 'demand',
            'error=', 'normal', 'binPath=', "System32\drivers\$($sample.DriverFile)", 'group=', $group, 'depend=', 'FltMgr',
            'DisplayName=', $sample.Service)
        # SupportedFeatures where Filter Manager reads it before 24H2 (the service key) and after.
        New-Item -Path (Join-Path $sample.ServiceKey 'Parameters') -Force | Out-Null
        foreach ($key in @($sample.ServiceKey, (Join-Path $sample.ServiceKey 'Parameters'))) {
            New-ItemProperty -Path $key -Name SupportedFeatures -PropertyType DWord -Value $features -Force | Out-Null
        }
        if ($demoFolder) {
            New-ItemProperty -Path (Join-Path $sample.ServiceKey 'Parameters') -Name DemoFolder -PropertyType String -Value $demoFolder -Force | Out-Null
        }
        foreach ($instances in @('Instances', 'Parameters\Instances')) {
            $instancesKey = Join-Path $sample.ServiceKey $instances
            $instanceKey = Join-Path $instancesKey $instance
            New-Item -Path $instanceKey -Force | Out-Null
            New-ItemProperty -Path $instancesKey -Name DefaultInstance -PropertyType String -Value $instance -Force | Out-Null
            New-ItemProperty -Path $instanceKey -Name Altitude -PropertyType String -Value $altitude -Force | Out-Null
            New-ItemProperty -Path $instanceKey -Name Flags -PropertyType DWord -Value $flags -Force | Out-Null
        }
    }
} else {
    throw "$PackagePath holds neither $($sample.InfFile) with $($sample.FsName).cat (a cargo-make package) nor $($sample.InxFile) (for a Linux-built driver: copy it from samples\$Name\). Nothing was changed."
}

if (Test-SampleInstalled -Sample $sample) {
    Write-Host ''
    Write-Host "$($sample.Package) is installed as service $($sample.Service)." -ForegroundColor Green
    Write-Host 'Next step (loads the filter, runs the demo, unloads it):'
    Write-Host "  .\Start-SampleDemo.ps1 -Name $Name"
} elseif (-not $WhatIfPreference) {
    throw "The installation finished but there is no service key $($sample.ServiceKey)."
}
