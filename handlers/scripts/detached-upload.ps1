# winpod-script: detached-upload
# Appends one base64 piece of a script that winpod will run detached (detached-start) to
# C:\ProgramData\winpod\ID.b64: cmd.exe takes at most 8,191 characters on one command line, so a
# longer script arrives in pieces. Prints one JSON object with the size so far.
param(
    [string]$Id = '{{Id}}',
    [string]$Chunk = '{{Chunk}}'
)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$d = Join-Path $env:ProgramData 'winpod'
New-Item -ItemType Directory -Force $d | Out-Null
$f = Join-Path $d "$Id.b64"
[IO.File]::AppendAllText($f, $Chunk)
[ordered]@{ script = 'detached-upload'; id = $Id; size = (Get-Item $f).Length } | ConvertTo-Json -Compress
