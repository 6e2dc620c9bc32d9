"use strict";
// contrail-ha UI: read-only views over /api/* (status refreshed every 5 s).

const $ = (sel) => document.querySelector(sel);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

async function getJSON(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

let lastStatus = null;

function renderStatus() {
  if (!lastStatus) return;
  const onlyBad = $("#only-bad").checked;
  const checks = lastStatus.checks.filter((c) => !onlyBad || !c.ok);
  fill($("#checks tbody"), checks.map((c) => [cell(c.component), cell(c.target),
    cell(c.ok ? "ok" : "DEGRADED", c.ok ? "ok" : "bad"), cell(c.detail)]));
  const bad = lastStatus.checks.filter((c) => !c.ok).length;
  const h = $("#health");
  h.textContent = lastStatus.healthy ? `healthy: ${lastStatus.checks.length} checks` : `degraded: ${bad} checks`;
  h.className = "badge " + (lastStatus.healthy ? "ok" : "bad");
}

async function loadStatus() {
  try {
    lastStatus = await getJSON("/api/status");
    $("#status-time").textContent = "read at " + new Date().toLocaleTimeString();
    renderStatus();
  } catch (e) {
    $("#health").textContent = "unreachable";
    $("#health").className = "badge bad";
  }
}

async function loadOverview() {
  const o = await getJSON("/api/overview");
  $("#cluster").textContent = `${o.cluster} · VIP ${o.vip}`;
  $("#topology-summary").textContent = `network ${o.network}, lb ${o.lb_protocol}, replication ` +
    Object.entries(o.replication).map(([k, v]) => `${k} ${v}`).join(", ") + ", replicas per host " +
    Object.entries(o.services).map(([k, v]) => `${k} ${v}`).join(", ");
  fill($("#hosts tbody"), o.hosts.map((h) => [cell(h.name), cell(h.ip), cell(h.roles.join(", "))]));
  $("#uve-type").replaceChildren(...o.uve_types.map((t) => new Option(t, t)));
}

async function loadAlarms() {
  const all = await getJSON("/api/alarms");
  const rows = [];
  for (const [type, uves] of Object.entries(all)) {
    for (const u of uves) {
      for (const a of u.value.UVEAlarms.alarms) {
        rows.push([cell(type), cell(u.name), cell(a.type.split(":").pop()), cell(String(a.severity)),
          cell(a.description, "bad")]);
      }
    }
  }
  fill($("#alarms tbody"), rows);
  $("#alarms-empty").hidden = rows.length > 0;
}

async function loadUves() {
  const type = $("#uve-type").value;
  const list = await getJSON(`/api/uves/${type}`);
  $("#uve-list").replaceChildren(...list.map((u) => {
    const li = document.createElement("li");
    li.textContent = u.name;
    li.onclick = async () => {
      document.querySelectorAll("#uve-list li").forEach((x) => x.classList.remove("active"));
      li.classList.add("active");
      $("#uve-view").textContent = JSON.stringify(await getJSON(`/api/uves/${type}/${u.name}`), null, 2);
    };
    return li;
  }));
}

async function loadDrills() {
  const runs = await getJSON("/api/drills");
  const rows = [];
  for (const run of runs) {
    for (const r of run.results) {
      const failed = Object.values(r.failed).reduce((a, b) => a + b, 0);
      rows.push([cell(run.file.replace("drill-", "").replace(".json", "")), cell(r.fault), cell(String(r.requests)),
        cell(String(failed)), cell(String(r.longest_outage_s)), cell(String(r.writes_back_s ?? "")),
        cell(String(r.recovery_s)), cell(String(r.acked_creates)),
        cell(r.data_ok ? "ok" : "LOST/DUP", r.data_ok ? "ok" : "bad")]);
    }
  }
  fill($("#drills tbody"), rows);
  $("#drills-empty").hidden = rows.length > 0;
}

async function loadConfig() {
  const kind = $("#config-type").value;
  const body = await getJSON(`/api/config/${kind}`);
  const objs = Object.values(body)[0] || [];
  fill($("#config tbody"), objs.map((o) => [cell(o.fq_name.join(":")), cell(o.uuid)]));
}

const loaders = { status: loadStatus, topology: async () => {}, alarms: loadAlarms, uves: loadUves,
  drills: loadDrills, config: loadConfig };

function show(tab) {
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
  document.querySelectorAll("main section").forEach((s) => { s.hidden = s.id !== `tab-${tab}`; });
  loaders[tab]().catch((e) => console.error(e));
}

window.addEventListener("hashchange", () => show(location.hash.slice(1) || "status"));
$("#only-bad").addEventListener("change", renderStatus);
$("#uve-type").addEventListener("change", () => loadUves().catch(console.error));
$("#config-type").addEventListener("change", () => loadConfig().catch(console.error));

loadOverview().then(() => show(location.hash.slice(1) || "status")).catch(console.error);
loadStatus();
setInterval(loadStatus, 5000);
