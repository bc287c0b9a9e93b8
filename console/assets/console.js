// The stomp-broker web console: one EventSource on /events. The server
// sends "history" once (the plot points so far), then a "sample" every
// interval: clients, spares, queues, topics, the cluster state (brokers
// sharing a database) and the newest plot point.
"use strict";

const maxPoints = 300; // five minutes at one sample a second
let points = [];

// here resolves a path against this page without the user:pass@ a URL may
// carry (fetch refuses URLs with credentials; the browser adds the login).
function here(path) {
  return new URL(path, location.origin + location.pathname);
}

const events = new EventSource(here("events"));
events.addEventListener("history", (e) => {
  points = JSON.parse(e.data) || [];
  drawPlots();
});
events.addEventListener("sample", (e) => {
  const s = JSON.parse(e.data);
  if (s.error) {
    setStatus("broker: " + s.error, true);
    return;
  }
  const updated = "updated " + new Date(s.time).toLocaleTimeString();
  if (s.store_error) setStatus(updated + "; " + s.store_error, true);
  else setStatus(updated, false);
  points.push(s.point);
  if (points.length > maxPoints) points.shift();
  drawPlots();
  showCluster(s.cluster);
  showClients(s.clients, s.spares || []);
  fill("queues", s.queues || [], (q) => [q.name, q.depth, q.consumers, q.in_flight, q.dead_lettered]);
  fill("topics", s.topics || [], (t) => [t.name, t.subscribers, t.rate.toFixed(1)]);
});
events.onerror = () => setStatus("connection lost; reconnecting…", true);

function setStatus(text, bad) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = bad ? "error" : "";
}

// fill replaces the rows of table id with one row per item; cells(item)
// gives the cell texts, the first of which is left-aligned.
function fill(id, items, cells) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const v of cells(item)) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  }));
}

// showCluster says whether this broker is connected to the others sharing
// its database, or cut off from them (serving its own clients only); a
// broker without a cluster shows nothing.
function showCluster(c) {
  const el = document.getElementById("cluster");
  el.hidden = !c;
  if (!c) {
    el.textContent = "";
    return;
  }
  el.textContent = c.connected
    ? "cluster node " + c.node + ": connected to the shared database"
    : "cluster node " + c.node + ": CUT OFF from the shared database, serving this broker's clients only";
  el.className = c.connected ? "" : "error";
}

function showClients(clients, spares) {
  document.getElementById("spares").textContent = spares.length + " spare processes waiting";
  fill("clients", clients, (c) => [
    c.pid, c.addr, c.transport, c.login || "", new Date(c.since).toLocaleTimeString(), c.subscriptions,
    c.messages_in, c.messages_out, c.cpu_seconds.toFixed(2), c.cpu_percent.toFixed(1), c.pss_kib,
  ]);
  const rows = document.querySelectorAll("#clients tbody tr");
  clients.forEach((c, i) => {
    rows[i].id = "client-" + c.pid;
    rows[i].children[1].className = "text";
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.textContent = "disconnect";
    b.className = "disconnect";
    b.onclick = () => disconnect(c.pid, b);
    td.append(b);
    rows[i].append(td);
  });
}

// disconnect asks the broker to SIGTERM the client's process (admins only).
async function disconnect(pid, button) {
  button.disabled = true;
  const r = await fetch(here("clients/" + pid + "/disconnect"), { method: "POST" });
  if (!r.ok) {
    setStatus("disconnect " + pid + ": " + r.status + " " + (await r.text()), true);
    button.disabled = false;
  }
}

function drawPlots() {
  plot("plot-in", points.map((p) => p.in));
  plot("plot-out", points.map((p) => p.out));
  plot("plot-depth", points.map((p) => p.depth));
  plot("plot-clients", points.map((p) => p.clients));
}

// plot draws values as a line, newest at the right edge, scaled to the
// largest value shown, which is written in the corner.
function plot(id, values) {
  const c = document.getElementById(id);
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const top = Math.max(1, ...values);
  const step = c.width / (maxPoints - 1);
  const x0 = c.width - (values.length - 1) * step;
  g.strokeStyle = "#2a6fdb";
  g.lineWidth = 1.5;
  g.beginPath();
  values.forEach((v, i) => {
    const y = c.height - 2 - (v / top) * (c.height - 16);
    if (i === 0) g.moveTo(x0 + i * step, y);
    else g.lineTo(x0 + i * step, y);
  });
  g.stroke();
  g.fillStyle = "#555";
  g.fillText("max " + (Number.isInteger(top) ? top : top.toFixed(1)), 4, 11);
}
