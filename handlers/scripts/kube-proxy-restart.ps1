# winpod-script: kube-proxy-restart
# Restarts the kubeproxy service; when it starts, kube-proxy re-creates the HNS load-balancer
# policies of every Service (often enough to cure DNS after a reboot). Prints one JSON object with
# the service state before and after; exit 1 if it is not Running afterwards.
param()
$ErrorActionPreference = 'Stop'
$r = [ordered]@{
    script = 'kube-proxy-restart'; host = [System.Net.Dns]::GetHostName()
    before = 'NotFound'; after = 'NotFound'; ok = $false
}
try {
    $r.before = "$((Get-Service kubeproxy).Status)"
    Restart-Service kubeproxy -Force
} catch { $r['error'] = "$_" }
$s = Get-Service kubeproxy -ErrorAction SilentlyContinue
if ($s) { $r.after = "$($s.Status)" }
$r.ok = $r.after -eq 'Running'
$r | ConvertTo-Json -Compress -Depth 5
if (-not $r.ok) { [Console]::Error.WriteLine("kube-proxy-restart: $($r['error'])"); exit 1 }
