# winpod-script: csi-proxy-start
# Starts the csi-proxy service, through whose named pipes (\\.\pipe\csi-proxy-*) CSI node
# plugins that are not HostProcess pods reach the host's disks, volumes and SMB shares. Refuses,
# changing nothing, when csi-proxy is not installed as a service or is disabled (its start type
# is a deliberate choice winpod leaves alone). Prints one JSON object; exit 1 unless csi-proxy is
# Running afterwards.
param()
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$r = [ordered]@{
    script = 'csi-proxy-start'; host = [System.Net.Dns]::GetHostName()
    before = 'NotFound'; after = 'NotFound'; startType = $null; ok = $false
}
$svc = Get-Service csi-proxy -ErrorAction SilentlyContinue
if (-not $svc) {
    $r['refused'] = 'csi-proxy is not installed as a service on this node: nothing was changed'
} elseif ("$($svc.StartType)" -eq 'Disabled') {
    $r['refused'] = 'the csi-proxy service is disabled: nothing was changed'
}
if ($svc) {
    $r.before = "$($svc.Status)"
    $r.startType = "$($svc.StartType)"
}
if ($svc -and -not $r.Contains('refused')) {
    try {
        if ($r.before -ne 'Running') {
            Start-Service csi-proxy
            $svc.WaitForStatus('Running', [TimeSpan]::FromSeconds(30))
        }
    } catch { $r['error'] = "$_" }
    $svc.Refresh()
    $r.after = "$($svc.Status)"
} elseif ($svc) {
    $r.after = $r.before
}
$r.ok = -not $r.Contains('refused') -and $r.after -eq 'Running'
$r | ConvertTo-Json -Compress -Depth 3
if (-not $r.ok) { [Console]::Error.WriteLine("csi-proxy-start: $($r['refused'])$($r['error'])"); exit 1 }
