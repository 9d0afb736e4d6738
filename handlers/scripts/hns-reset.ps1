# winpod-script: hns-reset
# Rebuilds this node's pod network when a reboot left stale HNS policies (DNS fails in its pods),
# the way AKS's own cleanup does it: only the pod (CNI) network, found by name, is removed, never
# the network that holds the vSwitch on the management NIC (AKS ext, flannel External: removing
# it drops the node off the network until it is re-provisioned). When the two cannot be told
# apart it refuses and changes nothing. Sequence: stop kube-proxy (its service, kubeproxy or
# kube-proxy) and kubelet, stop the containers (ctr), remove the pod network's endpoints, the
# policy lists before the network (else Server 2019 fails with "The network was not found"),
# the pod network, wait for HNS to settle, start kubelet, then kube-proxy unless kubelet's start
# script already did. A kube-proxy HostProcess pod is restarted by winpod afterwards. A failed
# stop or removal skips the later removals; the starts always run. Over WinRM winpod runs it as a
# scheduled task and reads its result even when the network blips; in a HostProcess pod the pod
# keeps running while kubelet restarts and winpod reads its log afterwards. Prints one JSON object; exit 1 if it
# failed or refused.
param()
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
Remove-TypeData System.Array -ErrorAction SilentlyContinue
# Networks that hold the vSwitch on the management NIC, and the names CNIs give pod networks.
$ManagementNetworks = @('ext', 'External')
$PodNetworks = @('azure', 'l2bridge', 'cbr0', 'vxlan0', 'Calico', 'flannel.4096')
$steps = New-Object System.Collections.ArrayList
$r = [ordered]@{
    script = 'hns-reset'; host = [System.Net.Dns]::GetHostName(); podNetwork = $null
    kubeProxy = $null; steps = $steps; ok = $false
}
function Has([string]$Name) { [bool](Get-Command $Name -ErrorAction SilentlyContinue) }
function Invoke-Step([string]$Name, [scriptblock]$Action) {
    try {
        & $Action | Out-Null
        [void]$steps.Add([ordered]@{ step = $Name; ok = $true })
        $true
    } catch {
        [void]$steps.Add([ordered]@{ step = $Name; ok = $false; error = "$_" })
        $false
    }
}
$go = $true
try {
    if (-not (Has Get-HnsNetwork)) {
        $m = @('C:\k\hns.v2.psm1', 'C:\k\hns.psm1') | Where-Object { Test-Path $_ } | Select-Object -First 1
        if (-not $m) { throw 'no HNS cmdlets (Get-HnsNetwork) and no C:\k\hns.v2.psm1 or hns.psm1' }
        Import-Module $m -DisableNameChecking
    }
    # HCN load balancers (v2) are removed with hns.v2.psm1's Remove-HnsLoadBalancer.
    if (-not (Has Get-HnsLoadBalancer) -and (Test-Path 'C:\k\hns.v2.psm1')) {
        Import-Module 'C:\k\hns.v2.psm1' -DisableNameChecking
    }
    $nets = @(Get-HnsNetwork)
    $pod = @($nets | Where-Object { $PodNetworks -contains $_.Name -and $ManagementNetworks -notcontains $_.Name })
    $keeper = @($nets | Where-Object { $ManagementNetworks -contains $_.Name })
    $seen = ($nets | ForEach-Object { "$($_.Name) ($($_.Type))" }) -join ', '
    if ($pod.Count -ne 1) {
        throw "cannot tell the pod network from the management network among: $seen"
    }
    $pod = $pod[0]
    if ("$($pod.Type)" -ne 'Overlay' -and -not $keeper.Count) {
        throw "pod network $($pod.Name) is the only network on the vSwitch: it carries the management address"
    }
    $r.podNetwork = $pod.Name
} catch {
    # Nothing is stopped or removed: the node keeps running as it is.
    $r['refused'] = "$_"
    $go = $false
}
$kp = @('kubeproxy', 'kube-proxy') | Where-Object { Get-Service $_ -ErrorAction SilentlyContinue } | Select-Object -First 1
$r.kubeProxy = if ($kp) { "service $kp" } else { 'not a service (HostProcess pod)' }
if ($go) {
    if ($kp) { $go = Invoke-Step "stop $kp" { Stop-Service $kp -Force } }
    if ($go) { $go = Invoke-Step 'stop kubelet' { Stop-Service kubelet -Force } }
    if ($go -and (Has ctr.exe)) {
        # As AKS's cleanup does: kubelet gives the pods new sandboxes, on the new network.
        $go = Invoke-Step 'stop containers' {
            # HostProcess containers and their sandboxes (this script's own pod, a kube-proxy or
            # CNI pod) share the host's network: they need no new sandbox, and killing this
            # script's own sandbox would make kubelet end the script when it is back.
            & ctr.exe -n k8s.io tasks ls -q | ForEach-Object {
                $info = (& ctr.exe -n k8s.io containers info $_ | Out-String) | ConvertFrom-Json
                if ($info.Spec.annotations.'microsoft.com/hostprocess-container' -ne 'true') {
                    & ctr.exe -n k8s.io tasks kill -s SIGKILL $_
                }
            }
        }
    }
    if ($go) {
        $go = Invoke-Step 'remove endpoints' {
            Get-HnsEndpoint | Where-Object { $_.VirtualNetworkName -eq $pod.Name } | Remove-HnsEndpoint
        }
    }
    if ($go) {
        $go = Invoke-Step 'remove policy lists' {
            if (Has Get-HnsPolicyList) { Get-HnsPolicyList | Remove-HnsPolicyList }
            if (Has Get-HnsLoadBalancer) { Get-HnsLoadBalancer | Remove-HnsLoadBalancer }
        }
    }
    if ($go) { $go = Invoke-Step 'remove pod network' { Remove-HnsNetwork $pod } }
    if ($go) { $null = Invoke-Step 'wait for HNS to settle' { Start-Sleep -Seconds 10 } }
    $null = Invoke-Step 'start kubelet' { Start-Service kubelet }
    if ($kp) {
        $null = Invoke-Step "start $kp" {
            # AKS's kubelet start script restarts kube-proxy itself: start it only if it did not.
            $deadline = (Get-Date).AddSeconds(20)
            while ((Get-Service $kp).Status -ne 'Running' -and (Get-Date) -lt $deadline) { Start-Sleep 2 }
            if ((Get-Service $kp).Status -ne 'Running') { Start-Service $kp }
        }
    }
}
$failed = @($steps | Where-Object { -not $_.ok })
$r.ok = $go -and $failed.Count -eq 0
$r | ConvertTo-Json -Compress -Depth 5
if (-not $r.ok) {
    $why = if ($r.Contains('refused')) { "refused: $($r['refused'])" } else { ($failed | ForEach-Object { "$($_.step): $($_.error)" }) -join "`n" }
    [Console]::Error.WriteLine($why)
    exit 1
}
