<#
.SYNOPSIS
    Turns test signing on (or off, with -Disable) for the next boot, after explaining what that
    means and asking for confirmation.

.DESCRIPTION
    Windows loads a test-signed driver, such as the samples built here, only when test signing is
    on. This script:
    - explains what it is about to do and shows the current state (test signing in the running
      boot, Secure Boot);
    - asks for confirmation (nothing happens without it; -Confirm:$false skips the question);
    - runs bcdedit /set testsigning on (or off).
    It does not reboot: the setting takes effect at the next boot, and the desktop then shows
    "Test Mode".

    Secure Boot: while Secure Boot is on, Windows ignores the test signing setting (and bcdedit
    may refuse to change it). Turn Secure Boot off in the firmware (UEFI) settings, or in the VM's
    settings (Hyper-V: Settings > Security > Enable Secure Boot), before you reboot.

    BitLocker: changing the boot configuration can make BitLocker ask for the recovery key at the
    next boot. Suspend BitLocker first (Suspend-BitLocker -MountPoint C: -RebootCount 1) or have
    the recovery key at hand.

    Use a test machine or a VM, never a production machine.

.PARAMETER Disable
    Turns test signing off instead.

.EXAMPLE
    .\Enable-TestSigning.ps1

    Explains, asks, then turns test signing on for the next boot.

.EXAMPLE
    .\Enable-TestSigning.ps1 -Disable

    Turns test signing off again for the next boot.
#>
[CmdletBinding(SupportsShouldProcess, ConfirmImpact = 'High')]
param(
    [switch]$Disable
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'SampleCommon.psm1') -Force

Assert-Elevated
$want = if ($Disable) { 'off' } else { 'on' }
$active = Test-TestSigningActive
$secureBoot = Get-SecureBootState

Write-Host "Test signing in the running boot: $(if ($active) { 'on' } else { 'off' })"
Write-Host "Secure Boot: $secureBoot"
Write-Host "This will run: bcdedit /set testsigning $want (takes effect at the next boot; no reboot is started)."
if (-not $Disable -and $secureBoot -eq 'On') {
    Write-Warning 'Secure Boot is on: Windows ignores test signing while it is. Turn it off in the firmware or VM settings before rebooting.'
}
Write-Warning 'If BitLocker protects the system drive, suspend it first (Suspend-BitLocker -MountPoint C: -RebootCount 1) or have the recovery key ready.'

if ($PSCmdlet.ShouldProcess('boot configuration {current}', "bcdedit /set testsigning $want")) {
    Invoke-NativeTool -FilePath 'bcdedit.exe' -ArgumentList @('/set', '{current}', 'testsigning', $want)
    Write-Host ''
    Write-Host "Test signing is set to $want for the next boot. Reboot when you are ready (Restart-Computer)." -ForegroundColor Green
    if (-not $Disable) {
        Write-Host 'After the reboot the desktop shows "Test Mode"; then run .\Install-Sample.ps1 -Name <sample>.'
    }
} else {
    Write-Host 'Nothing was changed.'
}
