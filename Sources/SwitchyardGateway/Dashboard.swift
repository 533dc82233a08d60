/// The live dashboard: one self-contained page (no external assets). It carries no data itself; its script
/// polls `/admin/stats` every 2 s, sending an admin token taken from the URL fragment (`/admin#token=…`, which
/// browsers never send to servers or logs) when one is configured.
enum Dashboard {
    static let html = #"""
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Switchyard</title>
<style>
:root{--bg:#0f1420;--panel:#171e2e;--line:#263049;--text:#e6e9f2;--muted:#8b95ad;--ok:#2fbf71;--warn:#f5a524;--bad:#f0525c;--info:#5b8def}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--text)}
header{display:flex;align-items:center;gap:16px;padding:18px 28px;border-bottom:1px solid var(--line)}
h1{font-size:18px;margin:0;font-weight:650;letter-spacing:.2px}h2{font-size:13px;text-transform:uppercase;letter-spacing:.8px;color:var(--muted);margin:0 0 10px;font-weight:600}
.badge{padding:3px 10px;border-radius:999px;font-weight:650;font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.healthy{background:#1d3b2c;color:var(--ok)}.degraded{background:#3f3117;color:var(--warn)}.critical,.down{background:#40202a;color:var(--bad)}
main{display:grid;grid-template-columns:repeat(12,1fr);gap:16px;padding:20px 28px}
section{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:16px}
.w12{grid-column:span 12}.w8{grid-column:span 8}.w4{grid-column:span 4}.w6{grid-column:span 6}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}.tile .v{font-size:24px;font-weight:650}.tile .l{color:var(--muted);font-size:12px}
table{width:100%;border-collapse:collapse}td,th{padding:7px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{color:var(--muted);font-weight:600;font-size:12px}td.reason{white-space:normal;color:var(--muted);font-size:12px;max-width:420px}
.state{display:inline-flex;align-items:center;gap:6px;font-weight:600}.dot{width:9px;height:9px;border-radius:50%}
.s-healthy{color:var(--ok)}.s-healthy .dot{background:var(--ok)}.s-probing{color:var(--info)}.s-probing .dot{background:var(--info)}
.s-rate_limited,.s-cooling,.s-outage{color:var(--warn)}.s-rate_limited .dot,.s-cooling .dot,.s-outage .dot{background:var(--warn)}
.s-disabled,.s-removed,.s-gone,.s-retired,.s-manually_disabled{color:var(--bad)}.s-disabled .dot,.s-removed .dot,.s-gone .dot,.s-retired .dot,.s-manually_disabled .dot{background:var(--bad)}
.countdown{font-variant-numeric:tabular-nums;color:var(--text)}code{color:var(--muted)}
.events li{padding:5px 0;border-bottom:1px solid var(--line);list-style:none;font-size:12px}.events{margin:0;padding:0;max-height:260px;overflow:auto}
.banner{grid-column:span 12;background:#40202a;border:1px solid var(--bad);color:#ffd6d9;border-radius:10px;padding:12px 16px;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
svg text{fill:var(--muted);font-size:11px}.muted{color:var(--muted)}
</style></head><body>
<header><h1>Switchyard</h1><span id="status" class="badge">…</span><span id="updated" class="muted"></span></header>
<main>
<div id="banner" class="banner" hidden></div>
<section class="w12"><div class="tiles">
<div class="tile"><div class="v" id="rps">–</div><div class="l">requests / s</div></div>
<div class="tile"><div class="v" id="errrate">–</div><div class="l">error rate (last minute)</div></div>
<div class="tile"><div class="v" id="hitrate">–</div><div class="l">cache hit rate</div></div>
<div class="tile"><div class="v" id="usable">–</div><div class="l">keys usable</div></div>
</div></section>
<section class="w8"><h2>Requests per second and errors, last 5 minutes</h2><svg id="chart" width="100%" height="160" viewBox="0 0 760 160" preserveAspectRatio="none"></svg></section>
<section class="w4"><h2>Last state changes</h2><ul id="events" class="events"></ul></section>
<section class="w12"><h2>Keys</h2><table><thead><tr><th>key</th><th>masked</th><th>account</th><th>state</th><th>back in</th><th>success</th><th>recent</th><th>p50 / p95</th><th>reason</th></tr></thead><tbody id="keys"></tbody></table></section>
<section class="w12"><h2>Rate limits on a model, a key × model pair or an account</h2><table><thead><tr><th>who</th><th>state</th><th>scope</th><th>back in</th><th>reason</th></tr></thead><tbody id="holds"></tbody></table></section>
<section class="w12"><h2>Models</h2><table><thead><tr><th>model</th><th>upstream</th><th>context</th><th>state</th><th>back in</th><th>p50 / p95</th><th>reason</th></tr></thead><tbody id="models"></tbody></table></section>
<section class="w12" id="replicas-section" hidden><h2>Replicas sharing the store</h2><table><thead><tr><th>replica</th><th>last seen</th></tr></thead><tbody id="replicas"></tbody></table></section>
</main>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const history = []; let last = null; let stats = null; let skew = 0;
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function countdown(until) {
  if (!until) return "";
  // Against the server's clock: the browser's may differ.
  const s = Math.max(0, Math.round((Date.parse(until) - (Date.now() + skew)) / 1000));
  const m = Math.floor(s / 60), r = s % 60;
  return m > 0 ? `${m}m ${String(r).padStart(2, "0")}s` : `${r}s`;
}
const ms = l => l && l.p50 != null ? `${l.p50} / ${l.p95} ms` : "–";
const state = s => `<span class="state s-${esc(s)}"><span class="dot"></span>${esc(s.replace("_", " "))}</span>`;
function render() {
  if (!stats) return;
  const st = document.getElementById("status"); st.textContent = stats.status; st.className = "badge " + stats.status;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  document.getElementById("keys").innerHTML = stats.keys.map(k => `<tr><td><b>${esc(k.label)}</b></td><td><code>${esc(k.masked)}</code></td><td>${esc(k.account)}</td><td>${state(k.state)}</td><td class="countdown">${countdown(k.until)}</td><td>${k.success_rate == null ? "–" : Math.round(k.success_rate * 100) + "%"}</td><td>${k.window_requests - k.window_failures}/${k.window_requests}</td><td>${ms(k.latency_ms)}</td><td class="reason">${esc(k.state === "healthy" ? "" : k.reason)}</td></tr>`).join("");
  document.getElementById("models").innerHTML = stats.models.map(m => `<tr><td><b>${esc(m.name)}</b></td><td><code>${esc(m.upstream)}</code></td><td>${m.context}</td><td>${state(m.state)}</td><td class="countdown">${countdown(m.until)}</td><td>${ms(m.latency_ms)}</td><td class="reason">${esc(m.state === "healthy" ? "" : m.reason)}</td></tr>`).join("");
  document.getElementById("holds").innerHTML = (stats.rate_limits || []).map(h => `<tr><td><b>${esc(h.subject)}</b></td><td>${state(h.state)}</td><td>${esc(h.scope_text)}</td><td class="countdown">${countdown(h.until)}</td><td class="reason">${esc(h.reason)}</td></tr>`).join("") || '<tr><td colspan="5" class="muted">none</td></tr>';
  document.getElementById("events").innerHTML = stats.events.slice(0, 30).map(e => `<li><b>${esc(e.subject)}</b> ${esc(e.from)} → ${state(e.to)} <span class="muted">${new Date(e.at).toLocaleTimeString()}${e.until ? " · until " + new Date(e.until).toLocaleTimeString() : ""}</span><br><span class="muted">${esc(e.reason)}</span></li>`).join("") || '<li class="muted">none yet</li>';
  const usable = stats.keys.filter(k => k.state === "healthy" || k.state === "probing").length;
  document.getElementById("usable").textContent = `${usable} / ${stats.keys.length}`;
  const c = stats.cache; const looked = c.hits + c.misses;
  document.getElementById("hitrate").textContent = looked ? Math.round(c.hits / looked * 100) + "%" : "–";
  const shared = stats.state && stats.state.shared ? stats.state : null;
  document.getElementById("replicas-section").hidden = !shared;
  if (shared) document.getElementById("replicas").innerHTML = shared.replicas.map(r => `<tr><td><b>${esc(r.name)}</b></td><td>${r.seconds_ago}s ago</td></tr>`).join("") || '<tr><td colspan="2" class="muted">none seen in the last 5 s</td></tr>';
  const errors = stats.config.last_reload_error || [];
  const notes = [];
  if (errors.length) notes.push("routes.yaml was not reloaded; the previous table keeps serving:\n" + errors.join("\n"));
  if (shared && shared.status !== "up") notes.push("The shared store is unreachable: this replica serves from what it knows and keeps each configured limit to its share until the store is back.");
  const banner = document.getElementById("banner");
  banner.hidden = notes.length === 0;
  banner.textContent = notes.join("\n\n");
}
function chart() {
  const svg = document.getElementById("chart"); const W = 760, H = 160;
  const pts = history.slice(-150); const peak = Math.max(1, ...pts.map(p => p.rps));
  const x = i => (i / Math.max(1, 149)) * W; const y = v => H - 14 - (H - 28) * v / peak;
  const line = k => pts.map((p, i) => `${x(i)},${y(p[k])}`).join(" ");
  svg.innerHTML = `<text x="4" y="12">${Math.round(peak)}/s</text><polyline points="${line("rps")}" fill="none" stroke="#5b8def" stroke-width="2"/><polyline points="${line("eps")}" fill="none" stroke="#f0525c" stroke-width="2"/>`;
}
async function poll() {
  try {
    const r = await fetch("/admin/stats", {headers: token ? {Authorization: "Bearer " + token} : {}});
    if (!r.ok) throw new Error(r.status);
    stats = await r.json();
    const now = Date.now(), t = stats.totals;
    skew = Date.parse(stats.now) - now;
    if (last) {
      const dt = (now - last.at) / 1000;
      history.push({rps: (t.requests - last.requests) / dt, eps: (t.errors - last.errors) / dt});
      if (history.length > 150) history.shift();
      const minute = history.slice(-30); const req = minute.reduce((a, p) => a + p.rps, 0), err = minute.reduce((a, p) => a + p.eps, 0);
      document.getElementById("rps").textContent = Math.round(history[history.length - 1].rps);
      document.getElementById("errrate").textContent = req ? (err / req * 100).toFixed(1) + "%" : "0%";
    }
    last = {at: now, requests: t.requests, errors: t.errors};
    render(); chart();
  } catch (e) {
    const st = document.getElementById("status"); st.textContent = "unreachable"; st.className = "badge down";
  }
}
poll(); setInterval(poll, 2000); setInterval(render, 1000);
</script></body></html>
"""#
}
