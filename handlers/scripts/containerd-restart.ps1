# winpod-script: containerd-restart
# Restarts containerd on this node when HCS/containerd is wedged (exec fails with "The RPC server
# is unavailable", pods stay Terminating): stop containerd, and if it does not stop within 60 s
# end its process; start it; then restart kubelet, so that it reconnects at once and finishes the
# pods that were stuck terminating. Services that depend on containerd and ran before run again
# afterwards. Restarting the runtime cuts exec sessions and HostProcess containers: winpod runs
# this as a scheduled task and reads its result afterwards. Refuses, changing nothing, when there
# is no containerd service (a Docker-era node). Prints one JSON object; exit 1 if containerd or
# kubelet is not Running afterwards, or it refused.
param()
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$r = [ordered]@{
    script = 'containerd-restart'; host = [System.Net.Dns]::GetHostName()
    before = [ordered]@{}; after = [ordered]@{}; killed = $false; ok = $false
}
$svc = Get-Service containerd -ErrorAction SilentlyContinue
if (-not $svc) {
    $r['refused'] = 'no containerd service on this node: nothing was changed'
    $r | ConvertTo-Json -Compress -Depth 4
    [Console]::Error.WriteLine("containerd-restart: $($r['refused'])")
    exit 1
}
# containerd, kubelet, and whatever else depends on containerd and runs now.
$watched = @('containerd', 'kubelet') + @($svc.DependentServices | Where-Object { $_.Status -eq 'Running' } |
    ForEach-Object { $_.Name }) | Select-Object -Unique
foreach ($name in $watched) {
    $s = Get-Service $name -ErrorAction SilentlyContinue
    $r.before[$name] = if ($s) { "$($s.Status)" } else { 'NotFound' }
}
$errors = @()
try {
    # -Force: also stops the services that depend on containerd (kubelet on some nodes).
    Stop-Service containerd -Force -NoWait
    try {
        $svc.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(60))
    } catch {
        # A wedged containerd may never finish stopping: end its process.
        $procId = (Get-CimInstance Win32_Service -Filter "Name='containerd'").ProcessId
        if ($procId) { Stop-Process -Id $procId -Force }
        $r.killed = $true
    }
} catch { $errors += "stop containerd: $_" }
# Whatever happened above, the node must not be left without its runtime or kubelet.
try {
    $svc.Refresh()
    # The service's recovery options may already be starting it again.
    if ("$($svc.Status)" -notin @('Running', 'StartPending')) {
        $svc.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))
        Start-Service containerd
    }
    $svc.WaitForStatus('Running', [TimeSpan]::FromSeconds(60))
} catch { $errors += "start containerd: $_" }
try {
    # kubelet reconnects at once and finishes the pods that were stuck terminating.
    if ($r.before['kubelet'] -ne 'NotFound') { Restart-Service kubelet -Force }
    foreach ($name in $watched) {
        if ($r.before[$name] -eq 'Running' -and "$((Get-Service $name).Status)" -ne 'Running') {
            Start-Service $name
        }
    }
} catch { $errors += "start kubelet: $_" }
if ($errors) { $r['error'] = $errors -join '; ' }
foreach ($name in $watched) {
    $s = Get-Service $name -ErrorAction SilentlyContinue
    $r.after[$name] = if ($s) { "$($s.Status)" } else { 'NotFound' }
}
$r.ok = $r.after['containerd'] -eq 'Running' -and $r.after['kubelet'] -in @('Running', 'NotFound')
$r | ConvertTo-Json -Compress -Depth 4
if (-not $r.ok) { [Console]::Error.WriteLine("containerd-restart: $($r['error'])"); exit 1 }
