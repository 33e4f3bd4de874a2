package debug

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
)

// The page is one html/template: every value that comes from the program
// (pool names, callers, stacks) goes through an action and is escaped for
// its context. Nothing is marked template.HTML. The script and the style
// sheet are constants spliced into the template's text, so the script's
// hash, which the Content-Security-Policy names, is known at init.
var page = template.Must(template.New("page").Parse(pageHead + style + pageBody + script + pageTail))

// csp lets the page run its own script, identified by its hash, and use
// inline styles; nothing else: no other script, no image but the empty
// favicon, no frames, and fetches only to this origin (the refresh).
var csp = "default-src 'none'; script-src 'sha256-" + scriptHash() + "'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func scriptHash() string {
	sum := sha256.Sum256([]byte(script))
	return base64.StdEncoding.EncodeToString(sum[:])
}

const pageHead = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>fairpool pools</title>
{{- if .RefreshSecs}}
<noscript><meta http-equiv="refresh" content="{{.RefreshSecs}}"></noscript>
{{- end}}
<style>`

const pageBody = `</style>
</head>
<body data-refresh-ms="{{.RefreshMS}}">
<header>
<h1>fairpool</h1>
<nav>refresh:{{range .Choices}} {{if .Current}}<b>{{.Label}}</b>{{else}}<a href="?refresh={{.Query}}">{{.Label}}</a>{{end}}{{end}}
 · <a href="?format=json">JSON</a></nav>
<span id="status" role="status"></span>
</header>
<main id="pools">
<p class="when">as of <time datetime="{{.Time}}">{{.Clock}}</time></p>
{{- range .Pools}}
<section class="pool" data-pool="{{.Name}}"{{if .Group}} data-kind="group"{{end}}>
<h2>{{.Name}}{{if .Group}} <span class="kind">group</span>{{end}}</h2>
<dl class="gauges">
<div><dt>size</dt><dd data-stat="size">{{.Size}}</dd></div>
<div><dt>open</dt><dd data-stat="open">{{.S.Open}}</dd></div>
<div class="in-use"><dt>in use</dt><dd data-stat="in-use">{{.S.InUse}}</dd></div>
<div class="idle"><dt>idle</dt><dd data-stat="idle">{{.S.Idle}}</dd></div>
<div class="opening"><dt>opening</dt><dd data-stat="opening">{{.S.Opening}}</dd></div>
<div class="closing"><dt>closing</dt><dd data-stat="closing">{{.S.Closing}}</dd></div>
<div class="waiting{{if .S.Waiting}} hot{{end}}"><dt>waiting</dt><dd data-stat="waiting">{{.S.Waiting}}</dd></div>
</dl>
<div class="usage" title="{{.UsageNote}}">
{{- range .Usage}}<span class="{{.Class}}" style="width: {{.Pct}}%"></span>{{end -}}
</div>
<dl class="counters">
<div><dt>acquires</dt><dd data-stat="acquires">{{.S.Acquires}}</dd></div>
<div><dt>waited</dt><dd data-stat="waits">{{.S.Waits}}</dd></div>
<div><dt>timeouts</dt><dd data-stat="timeouts"{{if .S.Timeouts}} class="bad"{{end}}>{{.S.Timeouts}}</dd></div>
<div><dt>cancels</dt><dd data-stat="cancels">{{.S.Cancels}}</dd></div>
<div><dt>shed</dt><dd data-stat="sheds"{{if .S.Sheds}} class="bad"{{end}}>{{.S.Sheds}}</dd></div>
<div><dt>opens</dt><dd data-stat="opens">{{.S.Opens}}</dd></div>
<div><dt>open errors</dt><dd data-stat="open-errors"{{if .S.OpenErrors}} class="bad"{{end}}>{{.S.OpenErrors}}</dd></div>
<div><dt>closed</dt><dd data-stat="closed">{{.Closed}}</dd></div>
<div><dt>leaks</dt><dd data-stat="leaks"{{if .S.Leaks}} class="bad"{{end}}>{{.S.Leaks}}</dd></div>
<div><dt>reclaimed</dt><dd data-stat="reclaims"{{if .S.Reclaims}} class="bad"{{end}}>{{.S.Reclaims}}</dd></div>
{{- with .Group}}
<div><dt>evictions</dt><dd data-stat="evictions">{{.Evictions}}</dd></div>
<div><dt>key pools</dt><dd data-stat="key-pools">{{.KeyPools}}</dd></div>
<div><dt>made</dt><dd data-stat="key-pools-created">{{.KeyPoolsCreated}}</dd></div>
<div><dt>dropped</dt><dd data-stat="key-pools-dropped">{{.KeyPoolsDropped}}</dd></div>
<div><dt>waiting for a key</dt><dd data-stat="waiting-for-key">{{.WaitingForKey}}</dd></div>
<div><dt>for GlobalMax</dt><dd data-stat="waiting-for-global">{{.WaitingForGlobal}}</dd></div>
<div><dt>for a connection</dt><dd data-stat="waiting-for-conn">{{.WaitingForConn}}</dd></div>
{{- end}}
</dl>
{{- if .Group}}
<h3>Keys <span class="count" data-stat="keys">{{len .Keys}}</span></h3>
{{- if .Keys}}
<div class="keys-wrap">
<table class="keys">
<thead><tr><th>key</th><th>size</th><th>open</th><th>in use</th><th>idle</th><th>opening</th><th>closing</th><th>waiting</th><th>longest wait</th><th>acquires</th><th>timeouts</th><th>open errors</th><th>closed</th></tr></thead>
<tbody>
{{- range .Keys}}
{{template "keyrow" .}}
{{- end}}
</tbody>
<tfoot>
{{template "keyrow" .Total}}
</tfoot>
</table>
</div>
{{- else}}
<p class="none">No keys yet.</p>
{{- end}}
{{- else}}
<h3>Holders <span class="count" data-stat="holders">{{len .Holders}}</span></h3>
{{- if .Holders}}
<table class="holders">
<colgroup><col class="c-n"><col class="c-dur"><col><col class="c-g"></colgroup>
<thead><tr><th>#</th><th>held for</th><th>acquired at (click for the stack)</th><th>goroutine</th></tr></thead>
<tbody>
{{- range .Holders}}
<tr><td>{{.N}}</td><td class="dur">{{.HeldFor}}</td><td><details data-key="{{.Key}}"><summary class="caller">{{.Caller}}</summary><pre>{{.Stack}}</pre></details></td><td>{{.Goroutine}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else if .S.InUse}}
<p class="none">{{.S.InUse}} in use; set Config.TrackLeases to see who holds them.</p>
{{- else}}
<p class="none">None.</p>
{{- end}}
{{- end}}
<div class="cols">
<div>
<h3>Wait histogram <span class="count" data-stat="hist-count">{{.HistCount}}</span></h3>
{{- if .Hist}}
<p class="quantiles">p50 <b>{{.P50}}</b> · p90 <b>{{.P90}}</b> · p99 <b>{{.P99}}</b></p>
<table class="hist">
{{- range .Hist}}
<tr><th title="{{.Range}}">{{.Label}}</th><td class="bar">{{if .N}}<span style="width: {{.Pct}}%"></span>{{end}}</td><td class="n">{{.N}}</td></tr>
{{- end}}
</table>
{{- else}}
<p class="none">No acquires yet.</p>
{{- end}}
</div>
{{- if not .Group}}
<div>
<h3>Waiters <span class="count" data-stat="waiters">{{len .Waiters}}</span></h3>
{{- if .Waiters}}
<table class="waiters">
<thead><tr><th>#</th><th>waiting for</th></tr></thead>
<tbody>
{{- range .Waiters}}
<tr><td>{{.N}}</td><td class="dur">{{.Waited}}</td></tr>
{{- end}}
</tbody>
</table>
{{- else}}
<p class="none">None.</p>
{{- end}}
</div>
{{- end}}
</div>
</section>
{{- else}}
<p class="none">No pools added.</p>
{{- end}}
</main>
<script>`

// pageTail ends the page and defines keyrow, one row of a group's Keys
// table: each key's, and the totals', which name no key.
const pageTail = `</script>
</body>
</html>
{{define "keyrow" -}}
<tr{{if not .Total}} data-row="{{.Key}}"{{end}}><td class="key">{{.Key}}</td><td data-col="size">{{.Size}}</td><td data-col="open">{{.Open}}</td>
<td data-col="in-use" class="in-use">{{.InUse}}</td><td data-col="idle" class="idle">{{.Idle}}</td><td data-col="opening">{{.Opening}}</td><td data-col="closing">{{.Closing}}</td>
<td data-col="waiting"{{if .Waiting}} class="hot"{{end}}>{{.Waiting}}</td><td data-col="longest" class="dur">{{.Longest}}</td>
<td data-col="acquires">{{.Acquires}}</td><td data-col="timeouts"{{if .Timeouts}} class="bad"{{end}}>{{.Timeouts}}</td><td data-col="open-errors"{{if .OpenErrors}} class="bad"{{end}}>{{.OpenErrors}}</td><td data-col="closed">{{.Closed}}</td></tr>
{{- end}}`

const style = `
:root { color-scheme: light; --fg: #1d232a; --muted: #5f6b76; --line: #dde2e7; --bg: #f4f6f8;
  --in-use: #2f6fde; --idle: #2f9e62; --opening: #d99a00; --closing: #8a94a0; --bad: #c92a2a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .4em 1.5em; align-items: baseline; padding: .7em 1.5em; background: #1d232a; color: #e9ecef; }
header h1 { margin: 0; font-size: 1.15em; }
header a { color: #9cc3ff; }
header b { color: #fff; }
#status.error { color: #ffb4a2; font-weight: 600; }
main { padding: 1em 1.5em; max-width: 1200px; }
.when { margin: 0 0 .8em; color: var(--muted); }
.pool { margin-bottom: 1.2em; padding: 1em 1.3em; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
.pool h2 { margin: 0 0 .5em; font-size: 1.25em; overflow-wrap: anywhere; }
dl { display: flex; flex-wrap: wrap; gap: .3em 1.8em; margin: 0 0 .6em; }
dt { color: var(--muted); font-size: .85em; }
dd { margin: 0; font-size: 1.6em; font-weight: 600; font-variant-numeric: tabular-nums; }
.counters dd { font-size: 1.05em; }
.in-use dd { color: var(--in-use); }
.idle dd { color: var(--idle); }
.opening dd { color: var(--opening); }
.waiting.hot dd, dd.bad { color: var(--bad); }
.usage { display: flex; height: 10px; margin: .1em 0 1em; background: #e9ecef; border-radius: 5px; overflow: hidden; }
.usage span { height: 100%; }
.usage .in-use { background: var(--in-use); }
.usage .opening { background: var(--opening); }
.usage .closing { background: var(--closing); }
.usage .idle { background: var(--idle); }
h3 { margin: 1em 0 .4em; font-size: 1em; }
.count { margin-left: .3em; color: var(--muted); font-weight: normal; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .6em; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
thead th { color: var(--muted); font-size: .85em; font-weight: 500; }
.holders { table-layout: fixed; }
.c-n { width: 3em; } .c-dur { width: 7em; } .c-g { width: 6.5em; }
.caller { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; cursor: pointer; }
pre { margin: .4em 0; padding: .6em; overflow-x: auto; font-size: 12px; background: #f1f3f5; border-radius: 4px; }
.cols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 0 2.5em; }
@media (max-width: 800px) { .cols { grid-template-columns: minmax(0, 1fr); } }
.quantiles { margin: 0 0 .4em; }
.hist th { width: 5.5em; padding: 1px .6em; color: var(--muted); font-weight: normal; text-align: right; white-space: nowrap; border: 0; }
.hist td { padding: 1px .6em; border: 0; }
.hist .bar span { display: block; min-width: 2px; height: 13px; margin-top: 3px; background: var(--in-use); border-radius: 2px; }
.hist .n { width: 5em; text-align: right; }
.none { color: var(--muted); }
.kind { margin-left: .3em; padding: 0 .4em; font-size: .6em; font-weight: 500; vertical-align: middle; color: var(--muted); border: 1px solid var(--line); border-radius: 4px; }
.keys td, .keys th { text-align: right; white-space: nowrap; }
.keys td.key, .keys th:first-child { text-align: left; white-space: normal; overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.keys td.in-use { color: var(--in-use); }
.keys td.idle { color: var(--idle); }
.keys td.hot, .keys td.bad { color: var(--bad); font-weight: 600; }
.keys tfoot td { font-weight: 600; border-top: 2px solid var(--line); }
.keys-wrap { overflow-x: auto; }
`

// script refreshes the page: it fetches the page again, swaps in the new
// <main>, and reopens the stacks that were open. A failed fetch shows in
// the header and is retried.
const script = `
"use strict";
(() => {
  const ms = Number(document.body.dataset.refreshMs);
  if (!(ms > 0)) return;
  const status = document.getElementById("status");
  const tick = async () => {
    try {
      const r = await fetch(location.href, {cache: "no-store"});
      if (!r.ok) throw new Error("HTTP " + r.status);
      const next = new DOMParser().parseFromString(await r.text(), "text/html").getElementById("pools");
      if (!next) throw new Error("the answer is not the debug page");
      const cur = document.getElementById("pools");
      const open = new Set(Array.from(cur.querySelectorAll("details[open]"), d => d.dataset.key));
      for (const d of next.querySelectorAll("details")) d.open = open.has(d.dataset.key);
      cur.replaceWith(document.importNode(next, true));
      status.textContent = "";
      status.className = "";
    } catch (e) {
      status.textContent = "refresh failed (" + e.message + "), retrying";
      status.className = "error";
    }
    setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
})();
`
