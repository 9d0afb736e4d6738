# winpod-script: hns-endpoints
# Lists this node's remote HNS endpoints (Get-HnsEndpoint, IsRemoteEndpoint: ID, IPAddress,
# network) and every HNS load balancer with its State (2 = applied; networkhealth.ps1 tests
# both). winpod compares the endpoints' IPs with the cluster's EndpointSlices: a remote
# endpoint no EndpointSlice holds is stale (k/k#130963, W-C#631). Changes nothing. Prints one
# JSON object; exit 1 if a read failed.
param()
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
# Else Windows PowerShell 5.1 may write an array as {"value":[...],"Count":n}.
Remove-TypeData System.Array -ErrorAction SilentlyContinue
$r = [ordered]@{
    script = 'hns-endpoints'; host = [System.Net.Dns]::GetHostName()
    remoteEndpoints = @(); loadBalancers = @(); errors = @()
}
function Has([string]$Name) { [bool](Get-Command $Name -ErrorAction SilentlyContinue) }
try {
    # Get-HnsNetwork is in-box since 1709; AKS ships hns.v2.psm1, older guides hns.psm1.
    $v2 = 'C:\k\hns.v2.psm1'
    if (-not (Has Get-HnsNetwork)) {
        $m = @($v2, 'C:\k\hns.psm1') | Where-Object { Test-Path $_ } | Select-Object -First 1
        if (-not $m) { throw 'no Get-HnsNetwork and no C:\k\hns.v2.psm1 or hns.psm1' }
        Import-Module $m -DisableNameChecking
    }
    if (-not (Has Get-HnsLoadBalancer) -and (Test-Path $v2)) { Import-Module $v2 -DisableNameChecking }
    $r.remoteEndpoints = @(Get-HnsEndpoint | Where-Object { $_.IsRemoteEndpoint } | ForEach-Object {
        [ordered]@{ ID = "$($_.ID)"; IPAddress = "$($_.IPAddress)"; VirtualNetworkName = "$($_.VirtualNetworkName)" }
    })
    if (Has Get-HnsLoadBalancer) {
        $r.loadBalancers = @(Get-HnsLoadBalancer | ForEach-Object {
            [ordered]@{ ID = "$($_.ID)"; State = [int]$_.State; FrontendVIPs = @($_.FrontendVIPs) }
        })
    }
} catch { $r.errors += "hns: $_" }
$r | ConvertTo-Json -Compress -Depth 5
if ($r.errors.Count) { exit 1 }
