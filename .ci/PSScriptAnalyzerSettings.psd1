# PSScriptAnalyzer settings for scripts/, used by the Windows CI job "PowerShell scripts". Run the
# same analysis on Windows (PSScriptAnalyzer 1.24.0 from the PowerShell Gallery):
#     Invoke-ScriptAnalyzer -Path scripts -Recurse -Settings .ci/PSScriptAnalyzerSettings.psd1
@{
    # Every rule enabled by default, at Error and Warning severity; Information findings are not
    # enforced.
    Severity     = @('Error', 'Warning')

    # The scripts talk to a person at an elevated prompt, in colour, and return nothing a pipeline
    # consumes: Write-Host is their output on purpose, not a stand-in for Write-Output.
    ExcludeRules = @('PSAvoidUsingWriteHost')

    Rules        = @{
        # SampleCommon.psm1 promises Windows PowerShell 5.1 (the one every Windows 10 and 11 has)
        # and PowerShell 7: syntax newer than 5.1 (such as ?? or ternaries) is a finding.
        PSUseCompatibleSyntax = @{
            Enable         = $true
            TargetVersions = @('5.1', '7.0')
        }
    }
}
