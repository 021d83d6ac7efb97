// shopfloor analytics dashboards: reads /dashboards/<role> (JSON) every 5 s and draws
// the role's key figures and charts with the vendored Chart.js. window.dashboard holds
// the charts and the last answer, for the browser test and for anyone curious.
(function () {
  "use strict";
  const role = document.body.dataset.role;
  const REFRESH_MS = 5000;
  const money = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  const share = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");
  const count = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en"));
  const seconds = (v) => (v === null || v === undefined ? "–" : v >= 3600 ? (v / 3600).toFixed(1) + " h" : v >= 60 ? (v / 60).toFixed(1) + " min" : v.toFixed(1) + " s");

  // per role: the tiles (id, label, value from the answer, how to show it) and the charts
  const ROLES = {
    management: {
      kpis: [
        ["gmv", "GMV (EUR)", (d) => d.gmv, money],
        ["orders", "Orders", (d) => d.orders, count],
        ["margin", "Margin (EUR)", (d) => d.margin.margin, money],
        ["margin_rate", "Margin rate", (d) => d.margin.margin_rate, share],
        ["gmv_growth", "GMV growth", (d) => d.gmv_growth, share],
      ],
      charts: [
        ["daily_gmv", "GMV per day (EUR)", "line", (d) => ({ labels: d.daily.map((x) => x.day), values: d.daily.map((x) => Number(x.gmv)) })],
        ["daily_orders", "Orders per day", "bar", (d) => ({ labels: d.daily.map((x) => x.day), values: d.daily.map((x) => x.orders) })],
        ["channel_gmv", "GMV by channel (EUR)", "bar", (d) => ({ labels: d.by_channel.map((x) => x.channel), values: d.by_channel.map((x) => Number(x.gmv)) })],
        ["channel_margin", "Margin before shipping by channel (EUR)", "bar", (d) => ({ labels: d.margin.by_channel.map((x) => x.channel), values: d.margin.by_channel.map((x) => Number(x.margin_before_shipping)) })],
      ],
    },
    operations: {
      kpis: [
        ["paid_rate", "Placed → paid", (d) => d.conversion.paid_rate, share],
        ["aov", "Average order (EUR)", (d) => d.aov, money],
        ["repurchase_rate", "Repurchase", (d) => d.repurchase_rate, share],
        ["cancellation_rate", "Cancelled", (d) => d.cancellation_rate, share],
        ["exceptions", "Risk exceptions", (d) => d.exceptions.orders, count],
        ["satisfaction", "Ticket satisfaction (1-5)", (d) => d.tickets.satisfaction, (v) => (v === null || v === undefined ? "–" : v.toFixed(2))],
        ["first_response", "Ticket first response", (d) => d.tickets.first_response_mean_s, seconds],
      ],
      charts: [
        ["funnel", "Funnel (orders placed in the range)", "bar", (d) => ({ labels: ["placed", "paid", "shipped", "delivered"], values: ["placed", "paid", "shipped", "delivered"].map((k) => d.funnel[k]) })],
        ["exceptions_by_rule", "Risk exceptions by rule", "bar", (d) => ({ labels: Object.keys(d.exceptions.by_rule), values: Object.values(d.exceptions.by_rule) })],
        ["daily_orders", "Orders per day", "line", (d) => ({ labels: d.daily.map((x) => x.day), values: d.daily.map((x) => x.orders) })],
      ],
    },
    warehouse: {
      kpis: [
        ["backlog", "Backlog (orders)", (d) => d.backlog, count],
        ["on_time_rate", "Shipped on time", (d) => d.on_time_rate, share],
        ["picking_accuracy", "Picking accuracy", (d) => d.picking_accuracy, share],
        ["pack_check_rate", "Pack checks passed", (d) => d.accuracy.pack_check_rate, share],
        ["shipments", "Shipments", (d) => d.shipments, count],
        ["paid_shipped_p90", "Paid → shipped p90", (d) => d.stages.paid_shipped.p90_s, seconds],
        ["alerts", "Active alerts", (d) => d.alerts.length, count],
      ],
      charts: [
        ["paid_shipped", "Paid → shipped per day, p50 (h)", "line", (d) => ({ labels: d.daily.map((x) => x.day), values: d.daily.map((x) => (x.paid_shipped_p50_s === null ? null : x.paid_shipped_p50_s / 3600)) })],
        ["picking_accuracy", "Picking accuracy per day (%)", "line", (d) => ({ labels: d.daily.map((x) => x.day), values: d.daily.map((x) => (x.picking_accuracy === null ? null : 100 * x.picking_accuracy)) })],
        ["shipments_per_day", "Shipments per day", "bar", (d) => ({ labels: d.daily.map((x) => x.day), values: d.daily.map((x) => x.shipments) })],
        ["by_warehouse", "Shipments by warehouse", "bar", (d) => ({ labels: Object.keys(d.by_warehouse), values: Object.values(d.by_warehouse) })],
      ],
    },
  };

  const spec = ROLES[role];
  const charts = {};
  window.dashboard = { role: role, charts: charts, data: null, updates: 0 };
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("current", a.dataset.role === role));

  const kpis = document.getElementById("kpis");
  for (const [id, label] of spec.kpis) {
    const tile = document.createElement("div");
    tile.className = "kpi";
    tile.innerHTML = `<div class="label"></div><div class="value" data-testid="kpi-${id}">–</div>`;
    tile.querySelector(".label").textContent = label;
    kpis.appendChild(tile);
  }
  const area = document.getElementById("charts");
  for (const [id, title, type] of spec.charts) {
    const box = document.createElement("div");
    box.className = "chart";
    box.innerHTML = `<h2></h2><canvas data-testid="chart-${id}"></canvas>`;
    box.querySelector("h2").textContent = title;
    area.appendChild(box);
    charts[id] = new Chart(box.querySelector("canvas"), {
      type: type,
      data: { labels: [], datasets: [{ label: title, data: [], backgroundColor: "#2f6fde99", borderColor: "#2f6fde", tension: 0.25 }] },
      options: { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } },
    });
  }

  const params = new URLSearchParams(location.search);
  const form = document.getElementById("range");
  for (const name of ["from", "to"]) if (params.get(name)) form.elements[name].value = params.get(name);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const name of ["from", "to"]) if (form.elements[name].value) next.set(name, form.elements[name].value);
    location.search = next.toString();
  });

  function draw(d) {
    for (const [id, , value, show] of spec.kpis) document.querySelector(`[data-testid="kpi-${id}"]`).textContent = show(value(d));
    for (const [id, , , series] of spec.charts) {
      const s = series(d);
      charts[id].data.labels = s.labels;
      charts[id].data.datasets[0].data = s.values;
      charts[id].update();
    }
    const alerts = document.getElementById("alerts");
    const active = d.alerts || [];
    alerts.hidden = active.length === 0;
    alerts.replaceChildren(...active.map((a) => {
      const p = document.createElement("p");
      p.className = `alert ${a.level}`;
      p.dataset.testid = `alert-${a.rule}`;
      p.textContent = `${a.level.replace("_", " ")}: ${a.summary}`;
      return p;
    }));
  }

  function missing(coverage) {
    const have = new Set(coverage.partitions);
    const absent = [...Array(coverage.of).keys()].filter((p) => !have.has(p));
    const why = coverage.workers.filter((w) => w.error).map((w) => `${w.worker}: ${w.error}`);
    return `partitions ${absent.join(", ")} of ${coverage.of} not counted` + (why.length ? ` (${why.join("; ")})` : "");
  }

  async function refresh() {
    const live = document.getElementById("live");
    try {
      const answer = await fetch(`/dashboards/${role}?${params.toString()}`, { headers: { Accept: "application/json" } });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const d = await answer.json();
      window.dashboard.data = d;
      draw(d);
      window.dashboard.updates += 1;
      const updated = `${d.from} – ${d.to}, updated ${new Date().toLocaleTimeString("en-GB")}`;
      const partial = d.coverage && !d.coverage.complete;
      // with more than one worker the figures are the group's; during a rebalance, or
      // when a worker does not answer, some partitions are missing: say so, never hide it
      live.classList.toggle("stale", Boolean(partial));
      document.getElementById("updated").textContent = partial ? `${updated}; partial: ${missing(d.coverage)}` : updated;
    } catch (error) {
      live.classList.add("stale");
      document.getElementById("updated").textContent = `not updated: ${error.message}`;
    }
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
