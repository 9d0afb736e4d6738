# winpod-script: node-status
# Reads this Windows node's build, last boot time, model, kubelet/kubeproxy/containerd states, HNS
# networks and policy lists, whether a policy list carries the cluster DNS Service IP, and the
# containerd sandbox (pause) image. Changes nothing. Prints one JSON object; exit 1 if a read failed.
param(
    [string]$DnsServiceIP = '{{DnsServiceIP}}'
)
$ErrorActionPreference = 'Stop'
# Else Windows PowerShell 5.1 may write an array as {"value":[...],"Count":n}.
Remove-TypeData System.Array -ErrorAction SilentlyContinue
$r = [ordered]@{
    script = 'node-status'; host = [System.Net.Dns]::GetHostName(); build = $null; revision = $null
    lastBootUpTime = $null; model = $null; services = [ordered]@{}; hnsNetworks = @()
    policyListCount = $null; dnsVip = $DnsServiceIP; dnsVipPolicy = $null; sandboxImage = $null
    errors = @()
}
try {
    $cv = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $r.build = [int]$cv.CurrentBuildNumber
    $r.revision = [int]$cv.UBR
    $os = Get-CimInstance Win32_OperatingSystem
    $r.lastBootUpTime = $os.LastBootUpTime.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
    $r.model = (Get-CimInstance Win32_ComputerSystem).Model
} catch { $r.errors += "os: $_" }
foreach ($n in 'kubelet', 'kubeproxy', 'containerd') {
    $s = Get-Service $n -ErrorAction SilentlyContinue
    $r.services[$n] = if ($s) { "$($s.Status)" } else { 'NotFound' }
}
try {
    if (-not (Get-Command Get-HnsNetwork -ErrorAction SilentlyContinue)) {
        Import-Module 'C:\k\hns.psm1' -DisableNameChecking
    }
    $r.hnsNetworks = @(Get-HnsNetwork | ForEach-Object {
        [ordered]@{ name = $_.Name; type = "$($_.Type)"; id = "$($_.Id)" } })
    $lists = @(Get-HnsPolicyList)
    $r.policyListCount = $lists.Count
    $r.dnsVipPolicy = [bool]($lists | Where-Object {
        $_.Policies | Where-Object { $_.VIPs -contains $DnsServiceIP } })
} catch { $r.errors += "hns: $_" }
try {
    foreach ($f in 'C:\k\containerd\containerd.toml', 'C:\Program Files\containerd\config.toml') {
        if ($null -eq $r.sandboxImage -and (Test-Path $f)) {
            if ((Get-Content $f -Raw) -match '(?m)^\s*sandbox(?:_image)?\s*=\s*[''"]([^''"]+)') {
                $r.sandboxImage = $Matches[1]
            }
        }
    }
} catch { $r.errors += "containerd config: $_" }
$r | ConvertTo-Json -Compress -Depth 5
if ($r.errors.Count) { [Console]::Error.WriteLine(($r.errors -join "`n")); exit 1 }
