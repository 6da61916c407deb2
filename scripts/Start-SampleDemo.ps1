<#
.SYNOPSIS
    Loads one installed minifilter sample, exercises it, tells you what its DbgPrint output should
    say, and unloads it.

.DESCRIPTION
    1. Checks that this PowerShell is elevated, that the running boot has test signing on, that
       Secure Boot is off and that the sample is installed (its service key exists). If any check
       fails it lists every reason and stops, having changed nothing.
    2. fltmc load <service>, then fltmc filters and fltmc instances -f <service>.
    3. Runs the sample's scenario, the same one as `cargo xtask demo <sample>`, in a scratch folder
       under %TEMP%\rs-minifilter-demo (or the folder name the service's Parameters\DemoFolder
       holds): the samples act only on files in a folder of that name:
       - passthrough: creates, writes, reads and deletes a few files;
       - callback-data: opens a few files and a directory;
       - section-context: opens a file read-only without write sharing
         ([System.IO.File]::Open(..., FileShare.Read)), reads it, queries its size, closes it, then
         opens it again with write sharing;
       - data-scan: writes a clean file and a file holding the EICAR test string, then opens both:
         the clean one opens, the EICAR one is denied;
       - section-conflict: creates a 64 MiB file, opens it for reading (the scan starts, slowly:
         the file is in the demo folder), then truncates it to 1 MiB from a second handle while
         the first is still open.
    4. Prints the DbgPrint lines to expect (they start with the sample's tag, e.g. rs-data-scan:)
       and how to see them (DebugView or WinDbg, Debug Print Filter).
    5. fltmc unload <service>, also when the scenario fails.

.PARAMETER Name
    The sample: passthrough, callback-data, section-context, data-scan or section-conflict.

.EXAMPLE
    .\Start-SampleDemo.ps1 -Name section-context

.EXAMPLE
    .\Start-SampleDemo.ps1 -Name data-scan -Verbose

.LINK
    Install-Sample.ps1
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [ValidateSet('passthrough', 'callback-data', 'section-context', 'data-scan', 'section-conflict')]
    [string]$Name
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot 'SampleCommon.psm1') -Force

$sample = Get-SampleInfo -Name $Name
Assert-CanProceed -Sample $sample -RequireInstalled

$tag = $sample.Tag
$expected = @{
    'passthrough'      = @(
        "nothing while the filter runs; at fltmc unload, five lines, one per counted operation, for example:",
        "$tag Create: 57 pre, 57 post",
        "$tag Read: 12 pre, 12 post    (then Write, Cleanup and Close; the counts include all other I/O on every volume)"
    )
    'callback-data'    = @(
        "two lines per file opened (directories, volume opens and failed opens are skipped), for example:",
        "$tag \Device\HarddiskVolume3\Users\<you>\AppData\Local\Temp\rs-minifilter-demo\callback-data\file1.txt: size 25, links 1, delete pending no, file id 0x<id>",
        "$tag \Device\HarddiskVolume3\Users\<you>\AppData\Local\Temp\rs-minifilter-demo\callback-data\file1.txt: async FileStandardInformation: size 25, links 1 (completion routine at <IRQL>)",
        "a file whose query fails would show: $tag <name>: FileStandardInformation query failed with STATUS_<...> (0x<...>); the open goes on",
        "and from the completion routine: $tag <name>: async FileStandardInformation query failed with STATUS_<...> (0x<...>); the open went on (completion routine at <IRQL>)",
        "(the sample logs every open on the machine, so expect many other lines too)"
    )
    'section-context'  = @(
        "$tag <name>\section.txt: section created (FltCreateSectionForDataScan), <size> bytes, process <pid>",
        "$tag <name>\section.txt: read: section found (FltGetSectionContext), read 1, query 0, opened by process <pid> with <size> bytes",
        "$tag <name>\section.txt: query information: section found (FltGetSectionContext), read 1, query 1, ...",
        "$tag <name>\section.txt: last cleanup: section closed (FltCloseSectionForDataScan STATUS_SUCCESS (0x00000000)), context released",
        "$tag <name>\section.txt: opened with write access or write sharing: no section (a writer could conflict with it)",
        "$tag <name>\section.txt: read: no section (FltGetSectionContext STATUS_NOT_FOUND (0xC0000225))"
    )
    'data-scan'        = @(
        "$tag attached to volume type NTFS (FltRegisterForDataScan returned STATUS_SUCCESS (0x00000000))    (at fltmc load, one per volume)",
        "$tag <name>\clean.txt: cleanup after a write: clean: 19 bytes scanned in 1 window(s)",
        "$tag <name>\eicar.txt: cleanup after a write: INFECTED: EICAR signature at offset 0: the file stays, its next open will be denied",
        "$tag <name>\clean.txt: open: clean: 19 bytes scanned in 1 window(s)",
        "$tag <name>\eicar.txt: open: INFECTED: EICAR signature at offset 0: open denied with STATUS_VIRUS_INFECTED (0xC0000906)",
        "and at fltmc unload: $tag unloaded: <n> clean, <n> infected, <n> not scanned",
        "(the sample scans every file opened for read on the machine, so expect many other lines too)"
    )
    'section-conflict' = @(
        "$tag \<path>\big.bin: scanning 67108864 bytes in 16384 chunks",
        "$tag \<path>\big.bin: a set-end-of-file to 1048576 bytes conflicts with the scan's section: aborting the scan and closing the section",
        "$tag \<path>\big.bin: section closed (STATUS_SUCCESS (0x00000000)): a set-end-of-file to 1048576 bytes proceeds",
        "$tag \<path>\big.bin: scan aborted after <n> of 16384 chunks: the section was closed for a conflicting I/O",
        "and at fltmc unload: $tag unloaded: <n> scans: ... aborted by conflicting I/O ...; <n> section conflicts, ...",
        "(a line 'not attaching to this volume' is normal for volumes that cannot create sections for data scan)",
        "(the sample scans only files opened for reading inside its demo folder, Parameters\DemoFolder, so other programs' files print nothing)"
    )
}

function Write-Expected {
    Write-Host ''
    Write-Host "What to expect in DebugView / WinDbg (lines start with '$tag'):" -ForegroundColor Yellow
    foreach ($line in $expected[$Name]) {
        Write-Host "  $line"
    }
}

# The samples act only on files in a folder of this name (Parameters\DemoFolder, written by the
# INF, read by the driver in DriverEntry; rs-minifilter-demo when the value is missing). The
# scenario works in a folder of that name, so whatever the value says, the demo is in scope.
$demoFolder = 'rs-minifilter-demo'
$parameters = Get-ItemProperty -Path (Join-Path $sample.ServiceKey 'Parameters') -Name DemoFolder -ErrorAction SilentlyContinue
if ($parameters -and $parameters.DemoFolder) {
    $demoFolder = $parameters.DemoFolder
}
$demoDir = Join-Path $env:TEMP (Join-Path $demoFolder $Name)

function Invoke-Scenario {
    New-Item -ItemType Directory -Path $demoDir -Force | Out-Null
    switch ($Name) {
        'passthrough' {
            foreach ($i in 1..3) {
                $path = Join-Path $demoDir "file$i.txt"
                [System.IO.File]::WriteAllText($path, "passthrough demo file $i")
                $text = [System.IO.File]::ReadAllText($path)
                Write-Host "  wrote and read $path ($($text.Length) characters)"
                Remove-Item -LiteralPath $path
            }
        }
        'callback-data' {
            foreach ($i in 1..3) {
                [System.IO.File]::WriteAllText((Join-Path $demoDir "file$i.txt"), "callback-data demo file $i")
            }
            foreach ($i in 1..3) {
                $path = Join-Path $demoDir "file$i.txt"
                $stream = [System.IO.File]::Open($path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::Read)
                try {
                    Write-Host "  opened $path ($($stream.Length) bytes)"
                } finally {
                    $stream.Dispose()
                }
            }
            $entries = [System.IO.Directory]::GetFileSystemEntries($demoDir)
            Write-Host "  opened the directory $demoDir ($($entries.Count) entries)"
        }
        'section-context' {
            $path = Join-Path $demoDir 'section.txt'
            [System.IO.File]::WriteAllText($path, ('section-context demo line' + [Environment]::NewLine) * 200)
            # Read-only, sharing read but not write: the filter may create a data-scan section.
            $stream = [System.IO.File]::Open($path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::Read)
            try {
                $buffer = New-Object byte[] 4096
                $read = $stream.Read($buffer, 0, $buffer.Length)
                Write-Host "  opened $path read-only without write sharing; read $read bytes"
                # Length queries FileStandardInformation through this same handle.
                Write-Host "  queried its size through the same handle: $($stream.Length) bytes"
            } finally {
                $stream.Dispose()
                Write-Host '  closed it'
            }
            $shared = [System.IO.File]::Open($path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite)
            try {
                $read = $shared.Read((New-Object byte[] 4096), 0, 4096)
                Write-Host "  opened it again with write sharing; read $read bytes"
            } finally {
                $shared.Dispose()
            }
        }
        'data-scan' {
            $clean = Join-Path $demoDir 'clean.txt'
            $eicar = Join-Path $demoDir 'eicar.txt'
            [System.IO.File]::WriteAllText($clean, 'nothing to see here')
            # The EICAR anti-virus test string, built from two halves so that this script file does
            # not itself hold it (and is not flagged by anti-virus software).
            $firstHalf = 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EIC'
            $secondHalf = 'AR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
            try {
                [System.IO.File]::WriteAllText($eicar, $firstHalf + $secondHalf, [System.Text.Encoding]::ASCII)
                Write-Host "  wrote the EICAR test string to $eicar"
            } catch {
                Write-Warning "Writing $eicar failed: $($_.Exception.Message)"
            }
            $text = [System.IO.File]::ReadAllText($clean)
            Write-Host "  opened ${clean}: allowed ($($text.Length) characters)"
            if (-not (Test-Path -LiteralPath $eicar)) {
                Write-Warning "$eicar is gone: another anti-virus product (Microsoft Defender?) removed it. Exclude $demoDir from its real-time scanning on this test machine and run the demo again."
            } else {
                try {
                    [System.IO.File]::ReadAllText($eicar) | Out-Null
                    Write-Warning "Opening $eicar was NOT denied: the sample did not block it (is $($sample.Service) attached to this volume? see fltmc instances above)."
                } catch {
                    Write-Host "  opened ${eicar}: DENIED, as expected ($($_.Exception.GetBaseException().Message))" -ForegroundColor Green
                }
            }
        }
        'section-conflict' {
            $path = Join-Path $demoDir 'big.bin'
            $mebibyte = 1048576
            $size = 64 * $mebibyte
            $chunk = New-Object byte[] $mebibyte
            (New-Object System.Random 7).NextBytes($chunk)
            $writer = [System.IO.File]::Open($path, [System.IO.FileMode]::Create, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
            try {
                for ($written = 0; $written -lt $size; $written += $chunk.Length) {
                    $writer.Write($chunk, 0, $chunk.Length)
                }
            } finally {
                $writer.Dispose()
            }
            Write-Host "  created $path ($($size / $mebibyte) MiB)"
            # The first handle: a read open, which starts the scan (and its section). It shares
            # read and write so that the second handle can be opened for writing.
            $reader = [System.IO.File]::Open($path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite)
            try {
                $read = $reader.Read($chunk, 0, $chunk.Length)
                Write-Host "  opened it for reading (handle 1) and read $read bytes"
                Start-Sleep -Milliseconds 200
                $truncator = [System.IO.File]::Open($path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Write, [System.IO.FileShare]::ReadWrite)
                try {
                    $truncator.SetLength($mebibyte)
                    Write-Host '  truncated it to 1 MiB from handle 2 while handle 1 is open: the truncation succeeded'
                } finally {
                    $truncator.Dispose()
                }
            } finally {
                $reader.Dispose()
            }
            Write-Host "  its size is now $((Get-Item -LiteralPath $path).Length) bytes"
        }
    }
}

Write-Host "Demo of $($sample.Package) (service $($sample.Service))" -ForegroundColor Yellow
Write-DebugOutputHowTo
Write-Expected

$loadedHere = $false
if (Test-FilterLoaded -Sample $sample) {
    Write-Host "$($sample.Service) is already loaded; the demo uses it as it is and unloads it at the end."
} else {
    Invoke-NativeTool -FilePath 'fltmc.exe' -ArgumentList @('load', $sample.Service)
    $loadedHere = $true
}
try {
    Invoke-NativeTool -FilePath 'fltmc.exe' -ArgumentList @('filters')
    Invoke-NativeTool -FilePath 'fltmc.exe' -ArgumentList @('instances', '-f', $sample.Service)
    Write-Host ''
    Write-Host "Running the $Name scenario in $demoDir" -ForegroundColor Yellow
    Invoke-Scenario
    Write-Expected
} finally {
    Invoke-NativeTool -FilePath 'fltmc.exe' -ArgumentList @('unload', $sample.Service)
    if ($loadedHere) {
        Write-Host "Unloaded $($sample.Service). The driver stays installed: .\Uninstall-Sample.ps1 -Name $Name removes it."
    }
    Remove-Item -LiteralPath $demoDir -Recurse -Force -ErrorAction SilentlyContinue
}
