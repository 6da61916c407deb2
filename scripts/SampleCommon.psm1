<#
.SYNOPSIS
    Shared helpers of the minifilter sample scripts (Install-Sample.ps1, Start-SampleDemo.ps1,
    Uninstall-Sample.ps1, Enable-TestSigning.ps1).

.DESCRIPTION
    The table of samples, the checks every script makes before it changes anything (elevation,
    test signing, Secure Boot, installed service), a wrapper for fltmc and pnputil, and the INF
    helpers. Works in Windows PowerShell 5.1 and PowerShell 7.
#>

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# The fixed names of the samples. Altitudes and load order groups are not repeated here: each
# sample's INF (samples/<dir>/<crate>.inx) is their single source, and Get-InfSetting reads them from it.
$script:Samples = [ordered]@{
    'passthrough'      = @{ Package = 'rs-passthrough';      Service = 'RsPassthrough' }
    'callback-data'    = @{ Package = 'rs-callback-data';    Service = 'RsCallbackData' }
    'section-context'  = @{ Package = 'rs-section-context';  Service = 'RsSectionContext' }
    'data-scan'        = @{ Package = 'rs-data-scan';        Service = 'RsDataScan' }
    'section-conflict' = @{ Package = 'rs-section-conflict'; Service = 'RsSectionConflict' }
}

$script:DebugPrintFilterKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter'

function Get-SampleInfo {
    <#
    .SYNOPSIS
        Returns the names of one sample: directory, package, driver file, service, log tag.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [string]$Name
    )
    if (-not $script:Samples.Contains($Name)) {
        throw "Unknown sample '$Name'. Known samples: $($script:Samples.Keys -join ', ')."
    }
    $entry = $script:Samples[$Name]
    $fsName = $entry.Package -replace '-', '_'
    [pscustomobject]@{
        Name        = $Name
        Package     = $entry.Package
        FsName      = $fsName
        DriverFile  = "$fsName.sys"
        InfFile     = "$fsName.inf"
        InxFile     = "$fsName.inx"
        Service     = $entry.Service
        # Every DbgPrint line of a sample starts with its package name and a colon.
        Tag         = "$($entry.Package):"
        ServiceKey  = "HKLM:\SYSTEM\CurrentControlSet\Services\$($entry.Service)"
    }
}

function Get-RepositoryRoot {
    <#
    .SYNOPSIS
        The root of the repository: the parent of the scripts directory.
    #>
    [CmdletBinding()]
    param()
    Split-Path -Parent $PSScriptRoot
}

function Test-IsElevated {
    <#
    .SYNOPSIS
        True when the current PowerShell runs as an elevated administrator.
    #>
    [CmdletBinding()]
    param()
    $identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object System.Security.Principal.WindowsPrincipal($identity)
    $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)
}

function Test-TestSigningActive {
    <#
    .SYNOPSIS
        True when the running boot has test signing on.
    .DESCRIPTION
        Reads SystemStartOptions, which holds the options of the current boot (TESTSIGNING when
        test signing is on), so the answer does not depend on the language of bcdedit's output.
        `bcdedit /enum "{current}"` shows the setting for the next boot (PowerShell needs the
        quotes around {current}).
    #>
    [CmdletBinding()]
    param()
    $options = (Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name SystemStartOptions).SystemStartOptions
    return ($options -match '(^|\s)TESTSIGNING(\s|$)')
}

function Get-SecureBootState {
    <#
    .SYNOPSIS
        'On', 'Off' or 'Unsupported' (legacy BIOS, or a VM without UEFI Secure Boot).
    #>
    [CmdletBinding()]
    param()
    try {
        if (Confirm-SecureBootUEFI) { return 'On' }
        return 'Off'
    } catch [System.PlatformNotSupportedException] {
        return 'Unsupported'
    } catch {
        # Confirm-SecureBootUEFI throws "Cmdlet not supported on this platform" on BIOS machines.
        return 'Unsupported'
    }
}

function Test-SampleInstalled {
    <#
    .SYNOPSIS
        True when the sample's service key exists (the INF was installed).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [pscustomobject]$Sample
    )
    Test-Path -LiteralPath $Sample.ServiceKey
}

function Get-LoadRefusal {
    <#
    .SYNOPSIS
        The reasons a driver cannot be loaded now, as strings; empty when nothing stands in the way.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [pscustomobject]$Sample,
        [switch]$RequireInstalled
    )
    $reasons = New-Object System.Collections.Generic.List[string]
    if (-not (Test-IsElevated)) {
        $reasons.Add('This PowerShell is not elevated. Start it with "Run as administrator".')
    }
    if (-not (Test-TestSigningActive)) {
        $reasons.Add('Test signing is off in the running boot (bcdedit /enum "{current}" shows testsigning No). Run .\Enable-TestSigning.ps1, then reboot.')
    }
    if ((Get-SecureBootState) -eq 'On') {
        $reasons.Add('Secure Boot is on, so Windows ignores test signing. Turn Secure Boot off in the firmware (UEFI) settings or the VM settings.')
    }
    if ($RequireInstalled -and -not (Test-SampleInstalled -Sample $Sample)) {
        $reasons.Add("The sample is not installed: there is no service key $($Sample.ServiceKey). Run .\Install-Sample.ps1 -Name $($Sample.Name) first.")
    }
    return ,$reasons.ToArray()
}

function Assert-CanProceed {
    <#
    .SYNOPSIS
        Throws, listing every reason, when Get-LoadRefusal finds any. Changes nothing.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [pscustomobject]$Sample,
        [switch]$RequireInstalled
    )
    $reasons = Get-LoadRefusal -Sample $Sample -RequireInstalled:$RequireInstalled
    if ($reasons.Count -gt 0) {
        $text = ($reasons | ForEach-Object { "  - $_" }) -join [Environment]::NewLine
        throw "Refusing to continue; nothing was changed:$([Environment]::NewLine)$text"
    }
}

function Assert-Elevated {
    <#
    .SYNOPSIS
        Throws when the current PowerShell is not elevated.
    #>
    [CmdletBinding()]
    param()
    if (-not (Test-IsElevated)) {
        throw 'This script changes the system: start PowerShell with "Run as administrator". Nothing was changed.'
    }
}

function Invoke-NativeTool {
    <#
    .SYNOPSIS
        Runs a native tool (fltmc, pnputil, sc.exe, bcdedit), echoing the command line, and throws
        when it exits with a code other than those allowed.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [string]$FilePath,
        [string[]]$ArgumentList = @(),
        [int[]]$AllowedExitCodes = @(0)
    )
    Write-Host "> $FilePath $($ArgumentList -join ' ')" -ForegroundColor Cyan
    & $FilePath @ArgumentList
    $code = $LASTEXITCODE
    if ($AllowedExitCodes -notcontains $code) {
        throw "$FilePath $($ArgumentList -join ' ') failed with exit code $code."
    }
}

function Test-FilterLoaded {
    <#
    .SYNOPSIS
        True when `fltmc filters` lists the sample's filter.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [pscustomobject]$Sample
    )
    $lines = & fltmc.exe filters
    if ($LASTEXITCODE -ne 0) {
        throw "fltmc filters failed with exit code $LASTEXITCODE."
    }
    $pattern = '^\s*' + [regex]::Escape($Sample.Service) + '\s'
    return [bool]($lines | Where-Object { $_ -match $pattern })
}

function Invoke-PnpUtil {
    <#
    .SYNOPSIS
        Runs pnputil.exe through Invoke-NativeTool. Exit code 3010 (ERROR_SUCCESS_REBOOT_REQUIRED)
        is success: "the requested operation completed successfully and a system reboot is
        required" (Microsoft's "PnPUtil Return Values"); the function says so and returns.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [string[]]$ArgumentList
    )
    Invoke-NativeTool -FilePath 'pnputil.exe' -ArgumentList $ArgumentList -AllowedExitCodes @(0, 3010)
    if ($LASTEXITCODE -eq 3010) {
        Write-Warning 'pnputil succeeded and reports that Windows needs a reboot to finish (exit code 3010, ERROR_SUCCESS_REBOOT_REQUIRED). Reboot before the next step.'
    }
}

function Get-InfSetting {
    <#
    .SYNOPSIS
        Reads one setting of a sample INF: a [Strings] value (Instance1.Altitude, ServiceName,
        DefaultInstance, ...) or the LoadOrderGroup of its service section.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [string]$Path,
        [Parameter(Mandatory)]
        [string]$Key
    )
    $section = ''
    foreach ($line in Get-Content -LiteralPath $Path) {
        $code = ($line -replace ';.*$', '').Trim()
        if ($code -match '^\[(.+)\]$') {
            $section = $Matches[1]
            continue
        }
        if ($code -match '^([^=]+?)\s*=\s*(.*)$') {
            $name = $Matches[1]
            $value = $Matches[2].Trim().Trim('"')
            if ($name -eq $Key -and ($section -eq 'Strings' -or $Key -eq 'LoadOrderGroup')) {
                return $value
            }
        }
    }
    throw "No '$Key' in $Path."
}

function Find-SampleOemInf {
    <#
    .SYNOPSIS
        The published names (oemNN.inf) of the sample's driver packages in the driver store,
        sorted; empty when there is none.
    .DESCRIPTION
        Asks the driver store through DISM (Get-WindowsDriver -Online, third-party packages only),
        which pairs each package's published name (Driver) with the INF it was installed from
        (OriginalFileName): a package of this sample is one installed from the sample's INF. This
        does not depend on the language of pnputil's output, nor on reading %windir%\INF. More than
        one is possible (a package added again by hand with pnputil): each is returned. Needs an
        elevated PowerShell, as DISM does.
    #>
    [CmdletBinding()]
    [OutputType([string[]])]
    param(
        [Parameter(Mandatory)]
        [pscustomobject]$Sample
    )
    $published = @(Get-WindowsDriver -Online |
        Where-Object { [System.IO.Path]::GetFileName($_.OriginalFileName) -ieq $Sample.InfFile } |
        ForEach-Object { $_.Driver } |
        Sort-Object -Unique)
    return ,$published
}

function Get-DebugPrintFilterLevel {
    <#
    .SYNOPSIS
        The IHVDRIVER value of the Debug Print Filter key, or $null when it is not set.
    #>
    [CmdletBinding()]
    param()
    $item = Get-ItemProperty -Path $script:DebugPrintFilterKey -Name IHVDRIVER -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return [int]$item.IHVDRIVER
}

function Write-DebugOutputHowTo {
    <#
    .SYNOPSIS
        Tells the user how to see the samples' DbgPrint output, and whether the filter key is set.
    #>
    [CmdletBinding()]
    param()
    $level = Get-DebugPrintFilterLevel
    Write-Host ''
    Write-Host 'Where the output appears' -ForegroundColor Yellow
    Write-Host '  The samples print with DbgPrintEx(DPFLTR_IHVDRIVER_ID = 77, level 3 = info).'
    Write-Host '  Windows shows such lines only if the Debug Print Filter lets them through:'
    Write-Host '    HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter'
    Write-Host '    value IHVDRIVER (REG_DWORD) = 0xF. It is read at boot.'
    if ($level -eq 0xF) {
        Write-Host '  It is set to 0xF on this machine.' -ForegroundColor Green
    } else {
        Write-Host '  It is NOT set to 0xF on this machine. To set it (then reboot):' -ForegroundColor Red
        Write-Host '    reg add "HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Debug Print Filter" /v IHVDRIVER /t REG_DWORD /d 0xf /f'
        Write-Host '  Without a reboot, in a kernel debugger: ed nt!Kd_IHVDRIVER_Mask 0xf'
    }
    Write-Host '  Read the lines in DebugView (run as administrator, Capture > Capture Kernel)'
    Write-Host '  or in WinDbg attached as a kernel debugger.'
}

$exported = @(
    'Get-SampleInfo', 'Get-RepositoryRoot', 'Test-IsElevated', 'Test-TestSigningActive',
    'Get-SecureBootState', 'Invoke-PnpUtil', 'Test-SampleInstalled', 'Get-LoadRefusal', 'Assert-CanProceed',
    'Assert-Elevated', 'Invoke-NativeTool', 'Test-FilterLoaded', 'Get-InfSetting',
    'Find-SampleOemInf', 'Get-DebugPrintFilterLevel', 'Write-DebugOutputHowTo'
)
Export-ModuleMember -Function $exported
