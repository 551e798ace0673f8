// Time-series charts drawn with uPlot (vendored, static/vendor/uplot-*) from
// the JSON chart routes (docs/API.md "Charts"). Each <figure data-chart-src>
// of templates/_chart.html becomes a chart: hashrate axes in H/s scaled to
// kH/s … PH/s, best difficulty on a log axis, time ticks in the viewer's
// zone (SoloTime from time.js), a tooltip and a live legend on hover, and
// the 1 h / 24 h / 7 d / 30 d links switch the range in place; the data is
// fetched again every minute (1 h) or five (longer ranges). Without JS
// (or if the data cannot be loaded) the figure's table stays the answer.
(function () {
  "use strict";
  if (!window.uPlot) return;
  const UNITS = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s", "ZH/s"];
  const SI = ["", "K", "M", "G", "T", "P", "E", "Z"];
  const COLOURS = ["#f7931a", "#5ab0f0", "#35c46a", "#e8b339", "#c678dd", "#ef5b5b", "#56d4c8", "#d19a66",
    "#98c379", "#e06c9f", "#8f9bff", "#b5e853"];
  const MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const RANGE_WORDS = { "1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days",
    "30d": "the last 30 days" };
  const zone = () => (window.SoloTime ? window.SoloTime.zone : "UTC");
  const when = (ts, style) => (window.SoloTime ? window.SoloTime.format(new Date(ts * 1000), style || "datetime")
    : new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " "));

  function trim(value) {
    const digits = Math.abs(value) < 9.995 ? 2 : Math.abs(value) < 99.95 ? 1 : 0;
    let text = value.toFixed(digits);
    if (text.includes(".")) text = text.replace(/0+$/, "").replace(/\.$/, "");
    return text;
  }
  // The power of 1000 to show a value in (as formatting._si: 999.5 rounds up).
  function power(value) {
    let index = 0;
    value = Math.abs(value || 0);
    while (value >= 999.5 && index < SI.length - 1) { value /= 1000; index += 1; }
    return index;
  }
  function hashrate(value) {
    if (value == null) return "—";
    const index = power(value);
    return `${trim(value / 1000 ** index)} ${UNITS[index]}`;
  }
  function difficulty(value) {
    if (value == null) return "—";
    const index = power(value);
    return `${trim(value / 1000 ** index)}${SI[index]}`;
  }
  // Hashrate axis ticks in one unit, chosen by the largest tick.
  function hashrateTicks(u, splits) {
    const top = Math.max(...splits.map((v) => Math.abs(v || 0)));
    const index = power(top);
    return splits.map((v) => `${trim(v / 1000 ** index)} ${UNITS[index]}`);
  }

  // Time ticks as the rest of the app writes times (24-hour clock), the
  // date under the first tick of each day; days alone when ticks are days apart.
  function timeTicks(u, splits, axisIdx, space, incr) {
    let lastDay = null;
    return splits.map((ts) => {
      if (ts == null) return null;
      const day = when(ts, "date");
      const [, month, date] = day.split("-");
      const short = `${+date} ${MONTH_NAMES[+month - 1]}`;
      if (incr >= 86400) return short;
      const clock = when(ts, "clock");
      const label = day !== lastDay ? `${clock}\n${short}` : clock;
      lastDay = day;
      return label;
    });
  }
  // Log axis: a line and a label at each power of ten only.
  function decades(u, axisIdx, min, max) {
    const out = [];
    for (let p = Math.floor(Math.log10(Math.max(min, 1))); 10 ** p <= max * 1.0001; p += 1) {
      if (10 ** p >= min * 0.9999) out.push(10 ** p);
    }
    return out.length ? out : [min, max];
  }

  function summaryOf(kind, data) {
    const words = RANGE_WORDS[data.range] || "the range";
    const first = data.series[0];
    const known = first ? first.values.filter((v) => v != null) : [];
    if (kind === "difficulty") {
      if (!known.length) return "No best difficulty recorded yet.";
      if (known[0] === known[known.length - 1]) {
        return `No new record over ${words}; the best stands at ${difficulty(known[known.length - 1])}.`;
      }
      return `Best difficulty over ${words} rose from ${difficulty(known[0])} to ${difficulty(known[known.length - 1])}, log scale.`;
    }
    if (!known.length || Math.max(...known) === 0) return `No hashrate recorded over ${words}.`;
    const mean = known.reduce((a, b) => a + b, 0) / known.length;
    return `${first.label} over ${words}: now ${hashrate(known[known.length - 1])}, average ${hashrate(mean)}, peak ${hashrate(Math.max(...known))}.`;
  }

  // The figure's table, rewritten for the range shown.
  function fillTable(figure, kind, data) {
    const body = figure.querySelector(".chart-figures tbody");
    if (!body) return;
    body.textContent = "";
    const cell = (tag, text, cls) => {
      const el = document.createElement(tag);
      el.textContent = text;
      if (cls) el.className = cls;
      return el;
    };
    if (kind === "difficulty") {
      const values = data.series[0] ? data.series[0].values : [];
      const start = Date.parse(data.start) / 1000;
      data.timestamps.map((ts, i) => [ts, values[i]]).slice(0, -1)
        .filter(([ts]) => ts !== start).reverse().slice(0, 10).forEach(([ts, value]) => {
          const row = document.createElement("tr");
          const time = document.createElement("time");
          const date = new Date(ts * 1000);
          time.dateTime = date.toISOString().replace(/\.\d{3}Z$/, "Z");
          time.dataset.style = "datetime";
          time.textContent = when(ts);
          if (window.SoloTime) { time.title = window.SoloTime.full(date); time.dataset.localised = "1"; }
          const at = document.createElement("td");
          at.append(time);
          row.append(at, cell("td", difficulty(value), "num"));
          body.append(row);
        });
      return;
    }
    data.series.forEach((s) => {
      const known = s.values.filter((v) => v != null);
      const row = document.createElement("tr");
      const head = cell("th", s.label);
      head.scope = "row";
      const mean = known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
      row.append(head, cell("td", known.length ? hashrate(known[known.length - 1]) : "—", "num"),
        cell("td", hashrate(mean), "num"), cell("td", known.length ? hashrate(Math.max(...known)) : "—", "num"));
      body.append(row);
    });
  }

  function tooltipPlugin(kind) {
    let tip;
    const format = kind === "difficulty" ? difficulty : hashrate;
    return {
      hooks: {
        init: (u) => {
          tip = document.createElement("div");
          tip.className = "chart-tooltip";
          tip.hidden = true;
          u.over.appendChild(tip);
          u.over.addEventListener("mouseleave", () => { tip.hidden = true; });
        },
        setCursor: (u) => {
          const idx = u.cursor.idx;
          if (idx == null || u.cursor.left == null || u.cursor.left < 0) { tip.hidden = true; return; }
          tip.textContent = "";
          const time = document.createElement("span");
          time.className = "tt-time";
          time.textContent = when(u.data[0][idx], "datetime");
          tip.append(time);
          let shown = 0;
          u.series.forEach((s, i) => {
            if (i === 0 || !s.show || u.data[i][idx] == null || shown >= 8) return;
            const line = document.createElement("div");
            const swatch = document.createElement("span");
            swatch.className = "tt-swatch";
            swatch.style.background = COLOURS[(i - 1) % COLOURS.length];
            line.append(swatch, document.createTextNode(`${s.label}: ${format(u.data[i][idx])}`));
            tip.append(line);
            shown += 1;
          });
          tip.hidden = false;
          const width = u.over.clientWidth;
          const left = u.cursor.left;
          tip.style.left = left > width / 2 ? "" : `${left + 12}px`;
          tip.style.right = left > width / 2 ? `${width - left + 12}px` : "";
          tip.style.top = `${Math.max(0, Math.min(u.cursor.top, u.over.clientHeight - tip.offsetHeight))}px`;
        },
      },
    };
  }

  function draw(figure, data) {
    const kind = figure.dataset.kind || "hashrate";
    const canvas = figure.querySelector(".chart-canvas");
    const old = canvas.querySelector(".uplot");
    if (figure._plot) { figure._plot.destroy(); figure._plot = null; }
    if (old) old.remove();
    const summary = summaryOf(kind, data);
    canvas.setAttribute("aria-label", summary);
    const note = canvas.querySelector(".chart-summary");
    if (note) note.textContent = summary;
    fillTable(figure, kind, data);
    if (!data.timestamps.length) { canvas.classList.remove("drawn"); return; }
    const width = Math.max(240, canvas.clientWidth || figure.clientWidth - 32);
    const log = data.scale === "log";
    const format = kind === "difficulty" ? difficulty : hashrate;
    const tz = zone();
    const series = [{ value: (u, ts) => (ts == null ? "—" : when(ts, "datetime")) }];
    data.series.forEach((s, i) => {
      series.push({
        label: s.label,
        stroke: COLOURS[i % COLOURS.length],
        width: i === 0 ? 2.5 : 1.5,
        fill: i === 0 && !log ? "rgba(247, 147, 26, 0.10)" : undefined,
        spanGaps: false,
        paths: log ? uPlot.paths.stepped({ align: 1 }) : undefined,
        value: (u, v) => format(v),
        points: { show: log },
      });
    });
    const start = Date.parse(data.start) / 1000;
    const end = Date.parse(data.end) / 1000;
    const axis = { stroke: "#9aa3b2", grid: { stroke: "rgba(154, 163, 178, 0.15)" }, ticks: { stroke: "rgba(154, 163, 178, 0.3)" } };
    const narrow = width < 500;
    const opts = {
      width,
      height: narrow ? 250 : 280,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      scales: {
        x: { time: true, range: () => [start, end] },
        y: log ? { distr: 3, log: 10 } : { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
      },
      axes: [
        { ...axis, label: `Time (${tz})`, labelSize: 18, labelFont: "12px system-ui", font: "11px system-ui",
          size: 44, values: timeTicks },
        { ...axis, label: narrow ? undefined : (log ? "Best difficulty (log scale)" : "Hashrate"),
          labelSize: narrow ? 0 : 18, labelFont: "12px system-ui", font: "11px system-ui", size: 72,
          splits: log ? decades : undefined,
          values: log ? (u, splits) => splits.map(difficulty) : hashrateTicks },
      ],
      series,
      cursor: { points: { size: 7 } },
      legend: { live: true },
      plugins: [tooltipPlugin(kind)],
    };
    const aligned = [data.timestamps].concat(data.series.map((s) => s.values));
    figure._plot = new uPlot(opts, aligned, canvas);
    // The legend is a table of one row: a phone's stacked-table layout (app.css) would make each entry a card.
    canvas.querySelectorAll("table.u-legend").forEach((legend) => legend.classList.add("keep-table"));
    canvas.classList.add("drawn");
  }

  function load(figure, range) {
    const url = new URL(figure.dataset.chartSrc, window.location.href);
    url.searchParams.set("range", range);
    let status = figure.querySelector(".chart-status");
    if (!status) {
      status = document.createElement("p");
      status.className = "chart-status";
      status.setAttribute("role", "status");
      figure.querySelector(".chart-canvas").after(status);
    }
    status.textContent = "";
    figure.setAttribute("aria-busy", "true");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((resp) => {
        if (!resp.ok) throw new Error(String(resp.status));
        return resp.json();
      })
      .then((data) => {
        figure.dataset.range = data.range;
        figure.querySelectorAll(".chart-ranges a[data-range]").forEach((a) => {
          if (a.dataset.range === data.range) a.setAttribute("aria-current", "true");
          else a.removeAttribute("aria-current");
        });
        figure._loadedAt = Date.now();
        draw(figure, data);
        const details = figure.querySelector(".chart-figures");
        if (details && figure._plot) details.open = false;
      })
      .catch(() => { status.textContent = "The chart could not be loaded; the figures below still hold."; })
      .finally(() => figure.removeAttribute("aria-busy"));
  }

  function setUp(root) {
    (root || document).querySelectorAll("figure[data-chart-src]").forEach((figure) => {
      if (figure.dataset.chartReady) return;
      figure.dataset.chartReady = "1";
      figure.addEventListener("click", (event) => {
        const link = event.target.closest(".chart-ranges a[data-range]");
        if (!link) return;
        event.preventDefault();
        load(figure, link.dataset.range);
      });
      load(figure, figure.dataset.range || "24h");
      // Stay current while the page is open (new samples every minute or
      // five), but never redraw under a reader's cursor or in a hidden tab.
      figure.addEventListener("pointerenter", () => { figure._hover = true; });
      figure.addEventListener("pointerleave", () => { figure._hover = false; });
      setInterval(() => {
        if (document.hidden || figure._hover || !document.body.contains(figure)) return;
        const range = figure.dataset.range || "24h";
        const due = range === "1h" ? 60000 : 300000;
        if (Date.now() - (figure._loadedAt || 0) >= due) load(figure, range);
      }, 30000);
      if (window.ResizeObserver) {
        let last = 0;
        new ResizeObserver(() => {
          const canvas = figure.querySelector(".chart-canvas");
          const width = Math.max(240, canvas.clientWidth);
          if (figure._plot && Math.abs(width - last) > 4) {
            last = width;
            figure._plot.setSize({ width, height: width < 500 ? 250 : 280 });
          }
        }).observe(figure);
      }
    });
  }

  window.SoloCharts = { hashrate, difficulty, setUp };
  setUp();
  document.addEventListener("htmx:afterSettle", (event) => setUp(event.target));
})();
