# winpod-script: node-status
# Reads this Windows node's build, last boot time, model, the kubelet / kube-proxy (service
# kubeproxy or kube-proxy) / containerd / csi-proxy services that are installed, and its HNS
# state as the HNS cmdlets print it: the networks, the policy lists (v1) or HCN load balancers (v2,
# hns.v2.psm1) that hold the cluster DNS Service IP, and those of the endpoints they reference
# that still exist. winpod compares references with endpoints: after a reboot the persisted
# lists still hold the VIP but reference endpoints that are gone. Changes nothing. Prints one
# JSON object; exit 1 if a read failed.
param(
    [string]$DnsServiceIP = '{{DnsServiceIP}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [Text.Encoding]::UTF8
# Else Windows PowerShell 5.1 may write an array as {"value":[...],"Count":n}.
Remove-TypeData System.Array -EA 0
# Keys a failed read leaves out are reported as null.
$r = [ordered]@{
    script = 'node-status'; host = [Net.Dns]::GetHostName(); services = [ordered]@{}
    dnsVip = $DnsServiceIP; dnsPolicyLists = @(); dnsLoadBalancers = @(); dnsEndpoints = @(); errors = @()
}
function Has($Name) { [bool](Get-Command $Name -EA 0) }
try {
    $cv = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $r.build = [int]$cv.CurrentBuildNumber
    $r.revision = [int]$cv.UBR
    $r.lastBootUpTime = (Get-CimInstance Win32_OperatingSystem).LastBootUpTime.ToUniversalTime().ToString('o')
    $r.model = (Get-CimInstance Win32_ComputerSystem).Model
} catch { $r.errors += "os: $_" }
Get-Service 'kubelet', 'kubeproxy', 'kube-proxy', 'containerd', 'csi-proxy' -EA 0 | % { $r.services[$_.Name] = "$($_.Status)" }
try {
    # Get-HnsNetwork is in-box since 1709; AKS ships hns.v2.psm1, older guides hns.psm1.
    $r.hnsModule = 'HostNetworkingService'
    $v2 = 'C:\k\hns.v2.psm1'
    if (-not (Has Get-HnsNetwork)) {
        $m = @($v2, 'C:\k\hns.psm1') | Where { Test-Path $_ } | Select -First 1
        if (-not $m) { throw 'no Get-HnsNetwork and no C:\k\hns.v2.psm1 or hns.psm1' }
        Import-Module $m -DisableNameChecking
        $r.hnsModule = Split-Path $m -Leaf
    }
    if (-not (Has Get-HnsLoadBalancer) -and (Test-Path $v2)) { Import-Module $v2 -DisableNameChecking }
    $r.hnsNetworks = @(Get-HnsNetwork | Select 'ID', 'Name', 'Type', 'ManagementIP')
    $lists = if (Has Get-HnsPolicyList) { @(Get-HnsPolicyList) } else { @() }
    $lbs = if (Has Get-HnsLoadBalancer) { @(Get-HnsLoadBalancer) } else { @() }
    $r.policyListCount = $lists.Count + $lbs.Count
    $r.dnsPolicyLists = @($lists | Where { $_.Policies.VIPs -contains $DnsServiceIP } | Select 'ID', 'Policies', 'References')
    $r.dnsLoadBalancers = @($lbs | Where { $_.FrontendVIPs -contains $DnsServiceIP } |
        Select 'ID', 'FrontendVIPs', 'State', 'HostComputeEndpoints')
    # v1 references read /endpoints/ID, v2 ones are bare ids.
    $ids = @($r.dnsPolicyLists.References) + @($r.dnsLoadBalancers.HostComputeEndpoints) | % { ("$_" -split '/')[-1] }
    $r.dnsEndpoints = @(Get-HnsEndpoint | Where { $ids -contains "$($_.ID)" } | Select 'ID', 'IPAddress', 'IsRemoteEndpoint')
} catch { $r.errors += "hns: $_" }
try {
    $f = @('C:\k\containerd\containerd.toml', 'C:\Program Files\containerd\config.toml') | Where { Test-Path $_ }
    if ($f -and (Get-Content $f[0] -Raw) -match '(?m)^\s*sandbox(?:_image)?\s*=\s*[''"]([^''"]+)') {
        $r.sandboxImage = $Matches[1]
    }
} catch { $r.errors += "containerd config: $_" }
$r | ConvertTo-Json -Compress -Depth 6
if ($r.errors.Count) { [Console]::Error.WriteLine(($r.errors -join "`n")); exit 1 }
