# winpod-script: kube-proxy-restart
# Restarts kube-proxy's Windows service (kubeproxy on AKS and aks-engine, kube-proxy with kubeadm
# and Calico's installer); when it starts, kube-proxy re-creates the HNS load-balancer policies of
# every Service (often enough to cure DNS after a reboot). A kube-proxy that runs as a HostProcess
# pod has no service: winpod restarts that pod instead of running this. Prints one JSON object
# with the service state before and after; exit 1 if it is not Running afterwards.
param()
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$r = [ordered]@{
    script = 'kube-proxy-restart'; host = [System.Net.Dns]::GetHostName(); service = $null
    before = 'NotFound'; after = 'NotFound'; ok = $false
}
try {
    $r.service = @('kubeproxy', 'kube-proxy') | Where-Object { Get-Service $_ -ErrorAction SilentlyContinue } |
        Select-Object -First 1
    if (-not $r.service) { throw 'no kubeproxy or kube-proxy service: kube-proxy runs as a HostProcess pod here' }
    $r.before = "$((Get-Service $r.service).Status)"
    Restart-Service $r.service -Force
} catch { $r['error'] = "$_" }
if ($r.service) { $r.after = "$((Get-Service $r.service).Status)" }
$r.ok = $r.after -eq 'Running'
$r | ConvertTo-Json -Compress -Depth 5
if (-not $r.ok) { [Console]::Error.WriteLine("kube-proxy-restart: $($r['error'])"); exit 1 }
