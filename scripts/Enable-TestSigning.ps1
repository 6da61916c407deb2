<#
.SYNOPSIS
    Turns test signing on (or off, with -Disable) for the next boot, after explaining what that
    means and asking for confirmation.

.DESCRIPTION
    Windows loads a test-signed driver, such as the samples built here, only when test signing is
    on. Microsoft's BCDEdit /set page: "Before setting BCDEdit options you might need to disable or
    suspend BitLocker and Secure Boot on the computer." So the order is: Secure Boot off, BitLocker
    suspended, then this script, then a reboot. This script:
    - refuses, changing nothing, while Secure Boot is on (Confirm-SecureBootUEFI says $true):
      Secure Boot policy protects the testsigning value, and Windows ignores it while Secure Boot
      is on. Turn Secure Boot off first in the firmware (UEFI) settings, or in the VM's settings
      (Hyper-V: Settings > Security > clear "Enable Secure Boot"), boot, and run it again;
    - warns when BitLocker protects the system drive and is not suspended (changing the boot
      configuration makes it ask for the recovery key): Suspend-BitLocker -MountPoint C:
      -RebootCount 1;
    - explains what it is about to do and asks for confirmation (nothing happens without it;
      -Confirm:$false skips the question);
    - runs bcdedit /set "{current}" testsigning on (or off).
    It does not reboot: the setting takes effect at the next boot, and the desktop then shows
    "Test Mode".

    -Disable (test signing off) is not refused while Secure Boot is on: Secure Boot already
    ignores test signing, and if bcdedit cannot change the value it says so.

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
if (-not $Disable -and $secureBoot -eq 'On') {
    throw ('Refusing to continue; nothing was changed: Secure Boot is on (Confirm-SecureBootUEFI). ' +
        'Its policy protects the testsigning setting and Windows ignores test signing while it is on. ' +
        'Turn Secure Boot off in the firmware (UEFI) or VM settings, suspend BitLocker if it protects the system drive, boot, and run this script again.')
}
$bitLocker = $null
if (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue) {
    $bitLocker = Get-BitLockerVolume -MountPoint $env:SystemDrive -ErrorAction SilentlyContinue
}
if ($null -ne $bitLocker -and "$($bitLocker.ProtectionStatus)" -eq 'On') {
    Write-Warning "BitLocker protects $env:SystemDrive and is not suspended: after this change it asks for the recovery key at boot. Suspend it first: Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1"
}
Write-Host "This will run: bcdedit /set `"{current}`" testsigning $want (takes effect at the next boot; no reboot is started)."

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
