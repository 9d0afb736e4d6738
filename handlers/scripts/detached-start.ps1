# winpod-script: detached-start
# Starts the uploaded script (detached-upload) as a scheduled task running as SYSTEM, detached
# from this WinRM shell: its output and exit code go to files next to it, so its result survives
# a connection that the script's own network changes cut; winpod reads it with detached-result.
# Results older than a day are removed first. Prints one JSON object; exit 1 if it did not start.
param(
    [string]$Id = '{{Id}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$d = Join-Path $env:ProgramData 'winpod'
$b = Join-Path $d $Id
$r = [ordered]@{ script = 'detached-start'; id = $Id; task = "winpod-$Id"; started = $false }
try {
    Get-ChildItem $d | Where-Object { $_.LastWriteTime -lt (Get-Date).AddDays(-1) } | Remove-Item -Force
    $text = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([IO.File]::ReadAllText("$b.b64")))
    [IO.File]::WriteAllText("$b.ps1", $text, (New-Object System.Text.UTF8Encoding $true))
    $run = "`$p = Start-Process powershell.exe -ArgumentList '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File $b.ps1' " +
        "-RedirectStandardOutput '$b.out' -RedirectStandardError '$b.err' -NoNewWindow -Wait -PassThru; " +
        "Set-Content '$b.exit' `$p.ExitCode"
    [IO.File]::WriteAllText("$b.run.ps1", $run)
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File $b.run.ps1"
    Register-ScheduledTask -TaskName $r.task -Action $action -User 'NT AUTHORITY\SYSTEM' -RunLevel Highest -Force | Out-Null
    Start-ScheduledTask -TaskName $r.task
    $r.started = $true
} catch { $r['error'] = "$_" }
$r | ConvertTo-Json -Compress
if (-not $r.started) { [Console]::Error.WriteLine($r['error']); exit 1 }
