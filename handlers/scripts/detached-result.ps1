# winpod-script: detached-result
# Reads the result of a script started by detached-start: state done (with its exit code, stdout
# and stderr), or the scheduled task's state while it runs (Running), or unknown. Reading again is
# harmless: the files stay until detached-start's clean-up a day later. Prints one JSON object.
param(
    [string]$Id = '{{Id}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$b = Join-Path (Join-Path $env:ProgramData 'winpod') $Id
$task = "winpod-$Id"
$r = [ordered]@{ script = 'detached-result'; id = $Id; state = 'unknown'; exitCode = $null; stdout = $null; stderr = $null }
if (Test-Path "$b.exit") {
    $r.state = 'done'
    $r.exitCode = [int]"$(Get-Content "$b.exit" -Raw)".Trim()
    $r.stdout = [IO.File]::ReadAllText("$b.out")
    $r.stderr = [IO.File]::ReadAllText("$b.err")
    Unregister-ScheduledTask -TaskName $task -Confirm:$false -ErrorAction SilentlyContinue
} else {
    $t = Get-ScheduledTask -TaskName $task -ErrorAction SilentlyContinue
    if ($t) { $r.state = "$($t.State)" }
}
$r | ConvertTo-Json -Compress
