<#
.SYNOPSIS
    Uninstalls one minifilter sample: unloads it if it is loaded, then removes its driver package
    or its service.

.DESCRIPTION
    - If the filter is loaded, runs fltmc unload <service> first.
    - If the sample was installed from a cargo-make package (it is in the driver store as an
      oemNN.inf: Get-WindowsDriver -Online names each package's published name and original INF),
      runs pnputil /delete-driver oemNN.inf /uninstall for each such package, which removes the
      service too.
    - If it was installed from a Linux-built driver (Install-Sample.ps1 registered the service
      directly), deletes the service with sc.exe delete and removes the driver file from
      %windir%\System32\drivers.
    Refuses, changing nothing, when it is not elevated or when the sample is not installed. The
    test certificates that Install-Sample.ps1 trusted stay trusted; remove them with certlm.msc if
    you want.

.PARAMETER Name
    The sample: passthrough, callback-data, section-context, data-scan or section-conflict.

.EXAMPLE
    .\Uninstall-Sample.ps1 -Name data-scan

.LINK
    Install-Sample.ps1
#>
[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
param(
    [Parameter(Mandatory)]
    [ValidateSet('passthrough', 'callback-data', 'section-context', 'data-scan', 'section-conflict')]
    [string]$Name
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'SampleCommon.psm1') -Force

$sample = Get-SampleInfo -Name $Name
Assert-Elevated
$oemInfs = @(Find-SampleOemInf -Sample $sample)
if (-not (Test-SampleInstalled -Sample $sample) -and $oemInfs.Count -eq 0) {
    throw "$($sample.Package) is not installed (no service key $($sample.ServiceKey), no driver package in the driver store). Nothing was changed."
}

if ($PSCmdlet.ShouldProcess($sample.Service, "Unload and uninstall $($sample.Package)")) {
    if (Test-FilterLoaded -Sample $sample) {
        Invoke-NativeTool -FilePath 'fltmc.exe' -ArgumentList @('unload', $sample.Service)
    }
    foreach ($oemInf in $oemInfs) {
        # 3010 (reboot required) is a success: Invoke-PnpUtil says so.
        Invoke-PnpUtil -ArgumentList @('/delete-driver', $oemInf, '/uninstall')
    }
    if (Test-SampleInstalled -Sample $sample) {
        # Registered directly by Install-Sample.ps1 for a Linux-built driver.
        Invoke-NativeTool -FilePath 'sc.exe' -ArgumentList @('delete', $sample.Service)
        $driver = Join-Path $env:windir "System32\drivers\$($sample.DriverFile)"
        if (Test-Path -LiteralPath $driver) {
            Remove-Item -LiteralPath $driver -Force
        }
    }
    if (Test-SampleInstalled -Sample $sample) {
        Write-Warning "The service key $($sample.ServiceKey) is still there: Windows deletes it once nothing holds the service open (close services.msc, or reboot)."
    } else {
        Write-Host "$($sample.Package) is uninstalled." -ForegroundColor Green
    }
}
