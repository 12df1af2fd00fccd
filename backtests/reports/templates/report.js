/* btc-backtest report: TradingView-style charts (lightweight-charts), trade list, inspector.
 * Reads the JSON block #report-data written by backtests/reports/html.py (chart_data.py packs
 * it). Public hooks for cards: btcReport.zoom(chartId, from, to), btcReport.onReady(fn),
 * [data-zoom-from][data-zoom-to][data-chart] elements zoom a chart on click. */
(function () {
  "use strict";
  var LW = window.LightweightCharts;
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var C = { up: "#089981", down: "#f23645", blue: "#2962ff", pink: "#d81b60", orange: "#ff9800",
            purple: "#7e57c2", grey: "#9598a1", ink: "#131722", liq: "#7f0000", line: "#e0e3eb" };
  var DAY = 86400;
  // Display timeframes (seconds) for zoomed-out views; weeks open on Monday 00:00 UTC.
  var LADDER = [60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, DAY, 2 * DAY, 3 * DAY,
                7 * DAY, 14 * DAY, 28 * DAY];
  var MONDAY = 4 * DAY; // 1970-01-05 was a Monday: week bins start there

  // ------------------------------------------------------------------ formatting
  var MINUS = "\u2212";
  function num(v, d) { // |v| with d decimals and thousands commas (toLocaleString is far slower)
    var s = Math.abs(v).toFixed(d), dot = s.indexOf("."), int = dot < 0 ? s : s.slice(0, dot);
    return int.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (dot < 0 ? "" : s.slice(dot));
  }
  var F = {
    price: function (v) { return v == null || isNaN(v) ? "\u2014" : (v < 0 ? MINUS : "") + "$" + num(v, Math.abs(v) < 1e5 ? 2 : 0); },
    axis: function (v) { var a = Math.abs(v); return (v < 0 ? MINUS : "") + "$" + num(v, a < 10 ? 2 : a < 1000 ? 1 : 0); },
    money: function (v) { return v == null || isNaN(v) ? "\u2014" : (v < 0 ? MINUS : "") + "$" + num(v, 2); },
    pct: function (v) { if (v == null || isNaN(v)) return "\u2014"; if (Math.abs(v) < 0.005) return "0.00%"; return (v > 0 ? "+" : MINUS) + num(v, 2) + "%"; },
    num: function (v, d) { return v == null || isNaN(v) ? "\u2014" : (v < 0 ? MINUS : "") + num(v, d == null ? 2 : d); },
    vol: function (v) { if (v == null || isNaN(v)) return "\u2014"; var a = Math.abs(v); return a >= 1e6 ? num(v / 1e6, 2) + "M" : a >= 1e3 ? num(v / 1e3, 1) + "k" : num(v, 2); },
    time: function (t) {
      if (t == null) return "\u2014";
      var s = new Date(t * 1000).toISOString();
      return s.slice(11, 16) === "00:00" ? s.slice(0, 10) : s.slice(0, 10) + " " + s.slice(11, 16);
    },
    dur: function (s) { if (s <= 0) return "same bar"; var d = Math.floor(s / DAY), h = Math.floor((s % DAY) / 3600); return d && h ? d + "d " + h + "h" : d ? d + "d" : h + "h " + Math.floor((s % 3600) / 60) + "m"; },
    tf: function (s) { return s % (7 * DAY) === 0 ? s / (7 * DAY) + "w" : s % DAY === 0 ? s / DAY + "d" : s % 3600 === 0 ? s / 3600 + "h" : s / 60 + "m"; }
  };
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function cls(v) { return v > 0 ? "pos" : v < 0 ? "neg" : ""; }

  // ------------------------------------------------------------------ data
  var cache = {};
  function decode(ref) {
    if (!ref) return null;
    var key = ref.b + "/" + ref.d + "/" + ref.k;
    if (cache[key]) return cache[key];
    var raw = atob(DATA.blobs[ref.b]), n = raw.length, bytes = new Uint8Array(n);
    for (var i = 0; i < n; i++) bytes[i] = raw.charCodeAt(i);
    var T = { i4: Int32Array, u2: Uint16Array, f4: Float32Array, f8: Float64Array }[ref.d];
    var a = new T(bytes.buffer), na = ref.d === "i4" ? -2147483648 : ref.d === "u2" ? 65535 : null;
    var out = new Float64Array(a.length), k = ref.k || 1;
    for (var j = 0; j < a.length; j++) out[j] = (na !== null && a[j] === na) ? NaN : a[j] / k;
    return (cache[key] = out);
  }
  function times(s) {
    var m = decode(s.t), out = new Float64Array(m.length);
    for (var i = 0; i < m.length; i++) out[i] = s.t0 + m[i] * 60;
    return out;
  }
  function bisect(arr, t) { // last index with arr[i] <= t (or 0)
    var lo = 0, hi = arr.length - 1;
    if (hi < 0) return -1;
    if (t < arr[0]) return 0;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (arr[mid] <= t) lo = mid; else hi = mid - 1; }
    return lo;
  }
  function binOf(t, tf) { var o = tf >= 7 * DAY ? MONDAY : 0; return Math.floor((t - o) / tf) * tf + o; }

  /* Native bars and their aggregates: {t, o, h, l, c, v, lines{name: arr}} per timeframe. */
  function Bars(spec) {
    var b = spec.bars;
    this.step = b.step;
    var lines = {};
    Object.keys(spec.lines).forEach(function (k) { lines[k] = decode(spec.lines[k]); });
    this.native = { tf: b.step, t: times(b), o: decode(b.o), h: decode(b.h), l: decode(b.l),
                    c: decode(b.c), v: b.v ? decode(b.v) : null, lines: lines };
    this.levels = {};
    this.levels[b.step] = this.native;
  }
  Bars.prototype.at = function (tf) {
    if (this.levels[tf]) return this.levels[tf];
    var n = this.native, len = n.t.length, t = [], o = [], h = [], l = [], c = [], v = [], lines = {};
    var names = Object.keys(n.lines), k = -1, cur = null;
    names.forEach(function (nm) { lines[nm] = []; });
    for (var i = 0; i < len; i++) {
      var bin = binOf(n.t[i], tf);
      if (bin !== cur) { cur = bin; k++; t.push(bin); o.push(n.o[i]); h.push(n.h[i]); l.push(n.l[i]); c.push(n.c[i]); v.push(n.v ? n.v[i] : NaN); names.forEach(function (nm) { lines[nm].push(n.lines[nm][i]); }); continue; }
      if (n.h[i] > h[k]) h[k] = n.h[i];
      if (n.l[i] < l[k]) l[k] = n.l[i];
      c[k] = n.c[i];
      if (n.v) v[k] += n.v[i];
      for (var q = 0; q < names.length; q++) { var x = n.lines[names[q]][i]; if (!isNaN(x)) lines[names[q]][k] = x; } // last value of the bin
    }
    return (this.levels[tf] = { tf: tf, t: t, o: o, h: h, l: l, c: c, v: n.v ? v : null, lines: lines });
  };
  Bars.prototype.pick = function (span, maxBars, current) {
    for (var i = 0; i < LADDER.length; i++) {
      var tf = LADDER[i];
      if (tf < this.step) continue;
      var limit = tf < current ? maxBars * 0.85 : maxBars; // hysteresis: no flicker at the edge
      if (span / tf <= limit) return tf;
    }
    return LADDER[LADDER.length - 1];
  };

  // ------------------------------------------------------------------ price chart
  var charts = {}, ready = [], order = [];

  function baseOptions(el, extra) {
    var o = {
      width: el.clientWidth, height: el.clientHeight, autoSize: true,
      layout: { background: { type: "solid", color: "#ffffff" }, textColor: "#434651", fontSize: 11,
                attributionLogo: false, panes: { separatorColor: C.line, enableResize: true } },
      grid: { vertLines: { color: "#f0f3fa" }, horzLines: { color: "#f0f3fa" } },
      crosshair: { mode: 0 },
      rightPriceScale: { borderColor: C.line, scaleMargins: { top: 0.07, bottom: 0.07 } },
      timeScale: { borderColor: C.line, rightOffset: 0, fixLeftEdge: true, fixRightEdge: true,
                   lockVisibleTimeRangeOnResize: true },
      localization: { timeFormatter: function (t) { return F.time(t); } }
    };
    Object.keys(extra || {}).forEach(function (k) { o[k] = Object.assign({}, o[k], extra[k]); });
    return o;
  }

  function PriceChart(spec) {
    var self = this;
    this.spec = spec;
    this.el = document.getElementById(spec.id);
    this.legend = this.el.querySelector(".legend");
    this.bars = new Bars(spec);
    this.trades = spec.trades;
    this.nTrades = spec.trades.side.length;
    var intraday = this.bars.step < DAY;
    this.chart = LW.createChart(this.el, baseOptions(this.el, { timeScale: { timeVisible: intraday, secondsVisible: false } }));
    var priceFormat = { type: "custom", minMove: 0.01, formatter: F.axis };
    this.candles = this.chart.addSeries(LW.CandlestickSeries, {
      upColor: C.up, downColor: C.down, borderVisible: false, wickUpColor: C.up, wickDownColor: C.down,
      priceFormat: priceFormat, priceLineVisible: false }, 0);
    this.lines = {};
    var styles = { wema200: [C.orange, 2, 0, "200-week EMA"], support: [C.up, 1, 1, "Support"], resistance: [C.down, 1, 1, "Resistance"] };
    Object.keys(styles).forEach(function (k) {
      if (!spec.lines[k]) return;
      var s = styles[k];
      self.lines[k] = self.chart.addSeries(LW.LineSeries, { color: s[0], lineWidth: s[1], lineStyle: s[2],
        lineType: k === "wema200" ? 0 : 1, priceFormat: priceFormat, lastValueVisible: false,
        priceLineVisible: false, crosshairMarkerVisible: false, title: "",
        autoscaleInfoProvider: function () { return null; } }, 0); // the candles alone fit the axis
    });
    var pane = 1;
    if (this.bars.native.v) {
      this.volume = this.chart.addSeries(LW.HistogramSeries, { priceFormat: { type: "volume" },
        priceLineVisible: false, lastValueVisible: false }, pane++);
    }
    if (spec.lines.rsi) {
      this.rsi = this.chart.addSeries(LW.LineSeries, { color: C.purple, lineWidth: 1, priceLineVisible: false,
        lastValueVisible: true, priceFormat: { type: "price", precision: 1, minMove: 0.1 },
        autoscaleInfoProvider: function () { return { priceRange: { minValue: 0, maxValue: 100 } }; } }, pane++);
      spec.thresholds.forEach(function (th) {
        self.rsi.createPriceLine({ price: th.value, color: C.grey, lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title: th.name });
      });
    }
    var panes = this.chart.panes();
    if (panes.length > 1) { panes[0].setStretchFactor(5); for (var p = 1; p < panes.length; p++) panes[p].setStretchFactor(1.1); }
    this.markers = LW.createSeriesMarkers(this.candles, [], { autoScale: false }); // the axis fits candles; margins leave room
    this.levelLines = [];
    this.tradeLines = [];
    this.showEvents = false;
    this.showLevels = true;
    this.tf = null;
    this.maxBars = Math.max(300, Math.min(spec.maxBars, Math.floor(this.el.clientWidth / 1.2)));
    this.setLog(spec.log);
    this.drawLevels();
    var n = this.bars.native.t;
    this.first = n[0]; this.last = n[n.length - 1];
    this.setRange(this.first, this.last, "All");
    this.chart.timeScale().subscribeVisibleTimeRangeChange(function () { self.scheduleCheck(); });
    this.chart.subscribeCrosshairMove(function (param) { self.hover(param); });
    this.hover({});
  }

  PriceChart.prototype.apply = function (tf) {
    if (tf === this.tf) return;
    this.tf = tf;
    var d = this.bars.at(tf), n = d.t.length, cs = new Array(n), vs = d.v ? new Array(n) : null;
    for (var i = 0; i < n; i++) {
      cs[i] = { time: d.t[i], open: d.o[i], high: d.h[i], low: d.l[i], close: d.c[i] };
      if (vs) vs[i] = { time: d.t[i], value: isNaN(d.v[i]) ? 0 : d.v[i], color: d.c[i] >= d.o[i] ? "rgba(8,153,129,0.45)" : "rgba(242,54,69,0.45)" };
    }
    this.candles.setData(cs);
    if (this.volume && vs) this.volume.setData(vs);
    var self = this;
    function line(arr) { var out = new Array(n); for (var j = 0; j < n; j++) out[j] = isNaN(arr[j]) ? { time: d.t[j] } : { time: d.t[j], value: arr[j] }; return out; }
    Object.keys(this.lines).forEach(function (k) { self.lines[k].setData(line(d.lines[k])); });
    if (this.rsi) this.rsi.setData(line(d.lines.rsi));
    this.drawMarkers();
    this.hover({});
    var label = this.el.closest(".card").querySelector(".display-tf");
    var text = tf === this.bars.step ? F.tf(tf) + " candles" : F.tf(tf) + " candles (" + F.tf(this.bars.step) + " bars aggregated while zoomed out)";
    var sb = this.spec.bars; // a long series ships its older bars pre-aggregated (chart_data.thinning)
    if (sb.native_from && tf < sb.history_tf) text += "; before " + F.time(sb.native_from) + ": " + F.tf(sb.history_tf) + " candles (aggregated in this file)";
    if (label) label.textContent = text;
  };

  PriceChart.prototype.drawMarkers = function () {
    var tf = this.tf, tr = this.trades, m = [], seen = {};
    function add(t, key, mk, n) { // at most one marker of a kind per displayed bar; n: merged already
      var bin = tf === this.bars.step ? t : binOf(t, tf), id = bin + key;
      n = n || 1;
      if (seen[id]) { seen[id].n += n; seen[id].mk.text = "\u00d7" + seen[id].n; return; }
      if (n > 1) mk.text = "\u00d7" + n;
      mk.time = bin; seen[id] = { n: n, mk: mk }; m.push(mk);
    }
    for (var i = 0; i < this.nTrades; i++) {
      var long = tr.side[i] > 0, win = tr.pnl[i] > 0, liq = tr.exit_reason[i] === "liquidation";
      add.call(this, tr.entry_time[i], long ? "L" : "S", { position: long ? "belowBar" : "aboveBar",
        shape: long ? "arrowUp" : "arrowDown", color: long ? C.blue : C.pink, size: 0.6 });
      add.call(this, tr.exit_time[i], liq ? "Q" : win ? "W" : "X", liq
        ? { position: long ? "belowBar" : "aboveBar", shape: "square", color: C.liq, size: 0.6, text: "liq" }
        : { position: long ? "aboveBar" : "belowBar", shape: "circle", color: win ? C.up : C.down, size: 0.4 });
    }
    if (this.showEvents) {
      var ev = this.spec.events;
      for (var j = 0; j < ev.length; j++) {
        var k = ev[j].kind, toSup = /to_support|held/.test(k);
        add.call(this, ev[j].t, "E" + k, { position: toSup ? "belowBar" : "aboveBar", shape: "square",
          color: /retest/.test(k) ? C.orange : toSup ? C.up : C.down, size: 0.5 }, ev[j].n);
      }
    }
    m.sort(function (a, b) { return a.time - b.time; });
    this.markers.setMarkers(m);
  };

  PriceChart.prototype.drawLevels = function () {
    var self = this;
    this.levelLines.forEach(function (l) { self.candles.removePriceLine(l); });
    this.levelLines = [];
    if (!this.showLevels) return;
    this.spec.levels.forEach(function (z) {
      var sup = /support/.test(z.role);
      self.levelLines.push(self.candles.createPriceLine({ price: z.centre, color: sup ? "rgba(8,153,129,0.75)" : "rgba(242,54,69,0.75)",
        lineWidth: 1, lineStyle: 2, axisLabelVisible: false, title: (sup ? "S " : "R ") + F.axis(z.centre) + (z.touches ? " \u00b7 " + z.touches + "\u00d7" : "") }));
    });
  };

  PriceChart.prototype.setLog = function (log) {
    this.log = log;
    this.candles.priceScale().applyOptions({ mode: log ? 1 : 0 });
    var tb = document.querySelector('.toolbar[data-chart="' + this.spec.id + '"]');
    if (tb) tb.querySelectorAll("[data-scale]").forEach(function (b) { b.classList.toggle("active", (b.dataset.scale === "log") === log); });
  };

  /* Show [from, to] (epoch seconds), choosing the display timeframe for that span first. */
  PriceChart.prototype.setRange = function (from, to, button) {
    var tb = document.querySelector('.toolbar[data-chart="' + this.spec.id + '"]');
    if (tb) tb.querySelectorAll("[data-range]").forEach(function (x) { x.classList.toggle("active", x.dataset.range === button); });
    from = Math.max(from, this.first); to = Math.min(to, this.last);
    if (to <= from) to = Math.min(this.last, from + this.bars.step);
    this.apply(this.bars.pick(to - from, this.maxBars, this.tf || Infinity));
    this.busy = true;
    this.chart.timeScale().setVisibleRange({ from: binOf(from, this.tf), to: to });
    this.busy = false;
  };

  PriceChart.prototype.scheduleCheck = function () {
    var self = this;
    if (this.busy || this.pending) return;
    this.pending = true;
    requestAnimationFrame(function () {
      self.pending = false;
      var r = self.chart.timeScale().getVisibleRange();
      if (!r) return;
      var want = self.bars.pick(r.to - r.from, self.maxBars, self.tf);
      if (want !== self.tf) self.setRange(r.from, r.to + (self.tf > want ? self.tf - want : 0));
    });
  };

  PriceChart.prototype.range = function (name) {
    var end = new Date(this.last * 1000), from;
    if (name === "All") { this.setRange(this.first, this.last, name); return; }
    if (name === "YTD") from = Date.UTC(end.getUTCFullYear(), 0, 1) / 1000;
    else {
      var months = { "1M": 1, "6M": 6, "1Y": 12 }[name], d = new Date(end.getTime());
      d.setUTCMonth(d.getUTCMonth() - months);
      from = d.getTime() / 1000;
    }
    this.setRange(from, this.last, name);
  };

  PriceChart.prototype.visible = function () {
    var r = this.chart.timeScale().getVisibleRange(), d = this.bars.at(this.tf), n = 0;
    if (!r) return { candles: 0, tf: this.tf };
    for (var i = 0; i < d.t.length; i++) if (d.t[i] >= r.from && d.t[i] <= r.to) n++;
    var h = this.chart.panes()[0].getHeight();
    return { candles: n, tf: this.tf, from: r.from, to: r.to,
             top: this.candles.coordinateToPrice(0), bottom: this.candles.coordinateToPrice(h) };
  };

  PriceChart.prototype.hover = function (param) {
    var d = this.bars.at(this.tf), i = param && param.time != null ? bisect(d.t, param.time) : d.t.length - 1;
    if (i < 0) return;
    var prev = i > 0 ? d.c[i - 1] : d.o[i], chg = (d.c[i] / prev - 1) * 100, L = d.lines, parts = [];
    parts.push("<b>" + F.time(d.t[i]) + (this.tf !== this.bars.step ? " (" + F.tf(this.tf) + ")" : "") + "</b>");
    parts.push("O " + F.price(d.o[i]) + " H " + F.price(d.h[i]) + " L " + F.price(d.l[i]) + " C " + F.price(d.c[i]));
    parts.push('<span class="' + cls(chg) + '">' + F.pct(chg) + "</span>");
    if (d.v) parts.push("Vol " + F.vol(d.v[i]));
    if (L.rsi) parts.push("RSI " + F.num(L.rsi[i], 1));
    if (L.support && !isNaN(L.support[i])) parts.push('<span class="pos">S ' + F.price(L.support[i]) + "</span>");
    if (L.resistance && !isNaN(L.resistance[i])) parts.push('<span class="neg">R ' + F.price(L.resistance[i]) + "</span>");
    if (L.wema200 && !isNaN(L.wema200[i])) parts.push('<span class="ema">200w EMA ' + F.price(L.wema200[i]) + "</span>");
    this.legend.innerHTML = parts.join(" \u00b7 ");
  };

  PriceChart.prototype.showTrade = function (i) {
    var tr = this.trades, self = this;
    var t0 = tr.entry_time[i], t1 = tr.exit_time[i], span = Math.max(t1 - t0, this.bars.step);
    var pad = Math.max(span * 0.6, 12 * this.bars.step);
    this.setRange(t0 - pad, t1 + pad);
    this.tradeLines.forEach(function (l) { self.candles.removePriceLine(l); });
    this.tradeLines = [];
    var long = tr.side[i] > 0;
    [["entry", tr.entry_price[i], C.blue, 0], ["exit", tr.exit_price[i], C.ink, 0], ["stop", tr.stop[i], C.down, 2],
     ["target", tr.target[i], C.up, 2], ["liquidation", tr.liquidation_price[i], C.liq, 1]].forEach(function (x) {
      if (x[1] == null || isNaN(x[1])) return;
      self.tradeLines.push(self.candles.createPriceLine({ price: x[1], color: x[2], lineWidth: 1, lineStyle: x[3], axisLabelVisible: true, title: x[0] }));
    });
    var box = document.getElementById(this.spec.id + "-inspector");
    if (box) {
      var rows = [["Side", long ? "Long" : "Short"], ["Entry", F.time(t0) + " at " + F.price(tr.entry_price[i])],
        ["Exit", F.time(t1) + " at " + F.price(tr.exit_price[i]) + " (" + tr.exit_reason[i] + ")"],
        ["Stop", F.price(tr.stop[i])], ["Target", F.price(tr.target[i])], ["Liquidation", F.price(tr.liquidation_price[i])],
        ["P/L", '<span class="' + cls(tr.pnl[i]) + '">' + F.money(tr.pnl[i]) + " (" + F.pct(tr.return_pct[i]) + ")</span>"],
        ["Held", F.dur(t1 - t0) + " \u00b7 " + tr.bars[i] + " bars"], ["Why", esc(tr.why[i])]];
      box.innerHTML = "<h4>Trade #" + (i + 1) + (tr.tag[i] ? " \u00b7 " + esc(tr.tag[i]) : "") +
        '</h4><dl>' + rows.map(function (r) { return "<dt>" + r[0] + "</dt><dd>" + r[1] + "</dd>"; }).join("") + "</dl>" +
        (isNaN(tr.stop[i]) && isNaN(tr.target[i]) ? '<p class="note">Stop and target are not recorded in the saved trades of this run.</p>' : "");
      box.hidden = false;
    }
  };

  // ------------------------------------------------------------------ equity charts
  function lineData(t, v) { var out = []; for (var i = 0; i < t.length; i++) if (!isNaN(v[i])) out.push({ time: t[i], value: v[i] }); return out; }
  var LINE_POINTS = 2500; // equity curves drawn with at most this many points (last of each bin)
  function thin(t, cols, how) { // -> {t, cols}: bins of the smallest LADDER timeframe that fits
    if (t.length <= LINE_POINTS) return { t: t, cols: cols };
    var span = t[t.length - 1] - t[0], tf = LADDER[LADDER.length - 1];
    for (var q = 0; q < LADDER.length; q++) if (span / LADDER[q] <= LINE_POINTS) { tf = LADDER[q]; break; }
    var ot = [], oc = cols.map(function () { return []; }), cur = null, k = -1;
    for (var i = 0; i < t.length; i++) {
      var b = binOf(t[i], tf);
      if (b !== cur) { cur = b; k++; ot.push(b); cols.forEach(function (c, j) { oc[j].push(c[i]); }); continue; }
      for (var j = 0; j < cols.length; j++) {
        var v = cols[j][i];
        if (isNaN(v)) continue;
        oc[j][k] = how[j] === "min" ? Math.min(oc[j][k], v) : v;
      }
    }
    return { t: ot, cols: oc, tf: tf };
  }
  function equityChart(spec) {
    var el = document.getElementById(spec.id + "-equity");
    if (!el) return;
    var e = spec.equity, t0 = times(e), eq0 = decode(e.equity), bm0 = e.benchmark ? decode(e.benchmark) : null;
    var dd0 = new Float64Array(eq0.length), peak = -Infinity; // drawdown of the saved equity, in %
    for (var q = 0; q < eq0.length; q++) { if (eq0[q] > peak) peak = eq0[q]; dd0[q] = (eq0[q] / peak - 1) * 100; }
    var th = thin(t0, bm0 ? [eq0, dd0, bm0] : [eq0, dd0], ["last", "min", "last"]);
    var t = th.t, eq = th.cols[0], ddv = th.cols[1], bm = bm0 ? th.cols[2] : null;
    var chart = LW.createChart(el, baseOptions(el, { timeScale: { minBarSpacing: 0.001, timeVisible: spec.bars.step < DAY } }));
    var fmt = { type: "custom", minMove: 0.01, formatter: F.axis };
    if (bm) chart.addSeries(LW.LineSeries, { color: C.grey, lineWidth: 1, priceFormat: fmt, title: "Buy & hold", priceLineVisible: false }, 0).setData(lineData(t, bm));
    var s = chart.addSeries(LW.LineSeries, { color: C.blue, lineWidth: 2, priceFormat: fmt, title: "Strategy", priceLineVisible: false }, 0);
    s.setData(lineData(t, eq));
    var dd = chart.addSeries(LW.AreaSeries, { lineColor: C.down, topColor: "rgba(242,54,69,0.05)", bottomColor: "rgba(242,54,69,0.35)",
      lineWidth: 1, invertFilledArea: true, priceFormat: { type: "custom", minMove: 0.01, formatter: function (v) { return F.num(v, 1) + "%"; } },
      priceLineVisible: false, title: "Drawdown" }, 1);
    dd.setData(lineData(t, ddv));
    // Log scale for the equity pane only once the drawdown pane exists: lightweight-charts gives a
    // pane created later the right scale's current mode, and a log drawdown axis squeezes -1 % to
    // -60 % into the bottom third of the pane.
    var lo = Infinity, hi = -Infinity;
    [eq, bm].forEach(function (a) { if (a) for (var i = 0; i < a.length; i++) { if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i]; } });
    if (lo > 0 && hi / lo > 5) s.priceScale().applyOptions({ mode: 1 });
    chart.panes()[0].setStretchFactor(3);
    chart.timeScale().fitContent();
    var legend = el.querySelector(".legend");
    chart.subscribeCrosshairMove(function (p) {
      var i = p && p.time != null ? bisect(t, p.time) : t.length - 1;
      legend.innerHTML = "<b>" + F.time(t[i]) + "</b> \u00b7 Strategy " + F.money(eq[i]) + (bm ? " \u00b7 Buy &amp; hold " + F.money(bm[i]) : "") +
        ' \u00b7 Drawdown <span class="neg">' + F.pct(ddv[i]) + "</span>";
    });
    legend.innerHTML = "Strategy " + F.money(eq[eq.length - 1]) + (bm ? " \u00b7 Buy &amp; hold " + F.money(bm[bm.length - 1]) : "");
    return chart;
  }
  function comparisonChart(el) {
    var colours = [C.blue, "#e91e63", "#00897b", "#ff6d00", "#6a1b9a", "#795548", "#0097a7"];
    var chart = LW.createChart(el, baseOptions(el, { timeScale: { minBarSpacing: 0.001 } }));
    var fmt = { type: "custom", minMove: 0.01, formatter: F.axis }, seen = {}, lo = Infinity, hi = -Infinity, any;
    DATA.charts.forEach(function (spec, n) {
      var e = spec.equity, bm = e.benchmark && !seen[e.benchmark.b];
      var th = thin(times(e), bm ? [decode(e.equity), decode(e.benchmark)] : [decode(e.equity)], ["last", "last"]);
      var t = th.t, eq = th.cols[0];
      if (bm) {
        seen[e.benchmark.b] = 1;
        chart.addSeries(LW.LineSeries, { color: C.grey, lineWidth: 1, priceFormat: fmt, title: "Buy & hold", priceLineVisible: false }).setData(lineData(t, th.cols[1]));
      }
      any = chart.addSeries(LW.LineSeries, { color: colours[n % colours.length], lineWidth: 2, priceFormat: fmt, title: spec.name, priceLineVisible: false });
      any.setData(lineData(t, eq));
      th.cols.forEach(function (col) { // strategies and buy & hold share the axis: log when >5x
        for (var i = 0; i < col.length; i++) { if (col[i] < lo) lo = col[i]; if (col[i] > hi) hi = col[i]; }
      });
    });
    if (any && lo > 0 && hi / lo > 5) any.priceScale().applyOptions({ mode: 1 });
    chart.timeScale().fitContent();
  }

  /* Generic line charts (sweep and walk-forward pages): DATA.lines[id] = {series: [{name,
     colour, t0, t, v}], log, marks: [epoch s]} drawn into [data-lines=id]. */
  var lineCharts = {};
  function lineChart(el, spec) {
    var chart = LW.createChart(el, baseOptions(el, { timeScale: { minBarSpacing: 0.001 } }));
    var fmt = { type: "custom", minMove: 0.01, formatter: F.axis }, first = null, all = [];
    spec.series.forEach(function (s) {
      var th = thin(times(s), [decode(s.v)], ["last"]);
      var line = chart.addSeries(LW.LineSeries, { color: s.colour, lineWidth: first ? 1 : 2, priceFormat: fmt,
        title: s.name.length > 28 ? s.name.slice(0, 27) + "…" : s.name, priceLineVisible: false });
      line.setData(lineData(th.t, th.cols[0]));
      all.push([s.name, th.t, th.cols[0], s.colour]);
      if (!first) first = line;
    });
    if (spec.log && first) first.priceScale().applyOptions({ mode: 1 });
    if (first && spec.marks.length) {
      var t0 = all[0][1];
      LW.createSeriesMarkers(first, spec.marks.map(function (t) {
        return { time: t0[Math.min(bisect(t0, t), t0.length - 1)], position: "aboveBar", shape: "arrowDown", color: C.grey, size: 0.5 };
      }));
    }
    chart.timeScale().fitContent();
    var legend = el.querySelector(".legend");
    function show(time) {
      legend.innerHTML = all.map(function (a) {
        var i = time == null ? a[1].length - 1 : bisect(a[1], time);
        return '<span style="color:' + a[3] + '">●</span> ' + esc(a[0]) + " " + F.money(a[2][i]);
      }).join(" · ") + (time == null ? "" : " · <b>" + F.time(time) + "</b>");
    }
    chart.subscribeCrosshairMove(function (p) { show(p && p.time != null ? p.time : null); });
    show(null);
    return { chart: chart, el: el, bars: { step: DAY },
             setRange: function (a, b) { chart.timeScale().setVisibleRange({ from: a, to: b }); } };
  }

  // ------------------------------------------------------------------ trade list
  var COLS = [
    ["n", "#", function (T, i) { return i + 1; }, function (v) { return v; }],
    ["side", "Side", function (T, i) { return T.side[i]; }, function (v) { return v > 0 ? "Long" : "Short"; }],
    ["entry_time", "Entry time", null, F.time], ["exit_time", "Exit time", null, F.time],
    ["held", "Held", function (T, i) { return T.exit_time[i] - T.entry_time[i]; }, F.dur],
    ["size", "Size (BTC)", null, function (v) { return F.num(v, 6); }],
    ["entry_price", "Entry", null, F.price], ["exit_price", "Exit", null, F.price],
    ["pnl", "P/L", null, F.money, true], ["return_pct", "Return", null, F.pct, true],
    ["exit_reason", "Exit reason", null, esc], ["fees", "Fees", null, F.money], ["funding", "Funding", null, F.money],
    ["mae_pct", "MAE", null, F.pct, true], ["mfe_pct", "MFE", null, F.pct, true],
    ["leverage", "Lev.", null, function (v) { return F.num(v, 1) + "\u00d7"; }],
    ["liquidation_price", "Liq. price", null, F.price], ["tag", "Tag", null, esc]
  ];
  var TEXT_COLS = { side: 1, exit_reason: 1, tag: 1 };
  function value(T, c, i) { return c[2] ? c[2](T, i) : T[c[0]][i]; }

  function TradeList(table, chart) {
    var self = this;
    this.table = table; this.chart = chart; this.T = chart.trades; this.n = chart.nTrades;
    this.sortCol = "n"; this.dir = 1;
    var head = table.querySelector("thead tr");
    COLS.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c[1]; th.dataset.col = c[0]; th.className = TEXT_COLS[c[0]] || c[0].indexOf("time") > 0 ? "" : "num";
      th.setAttribute("role", "button"); th.tabIndex = 0; th.title = "Sort by " + c[1];
      th.addEventListener("click", function () { self.sort(c[0]); });
      head.appendChild(th);
    });
    var tools = table.closest(".card").querySelector(".trade-tools");
    this.filterBox = tools.querySelector(".trade-filter"); this.sideBox = tools.querySelector(".trade-side");
    this.outcomeBox = tools.querySelector(".trade-outcome"); this.shown = tools.querySelector(".trade-shown");
    [this.filterBox, this.sideBox, this.outcomeBox].forEach(function (el) { el.addEventListener("input", function () { self.render(); }); });
    tools.querySelector(".trade-csv").addEventListener("click", function () { self.csv(); });
    table.querySelector("tbody").addEventListener("click", function (ev) {
      var tr = ev.target.closest("tr.trade");
      if (!tr) return;
      table.querySelectorAll("tr.selected").forEach(function (r) { r.classList.remove("selected"); });
      tr.classList.add("selected");
      chart.showTrade(+tr.dataset.i);
      chart.el.scrollIntoView({ block: "center", behavior: "instant" });
    });
    this.render();
  }
  TradeList.prototype.rows = function () {
    var T = this.T, q = this.filterBox.value.trim().toLowerCase(), side = this.sideBox.value, out = this.outcomeBox.value, idx = [];
    for (var i = 0; i < this.n; i++) {
      if (side && String(T.side[i]) !== side) continue;
      if (out === "win" && !(T.pnl[i] > 0)) continue;
      if (out === "loss" && T.pnl[i] > 0) continue;
      if (q) {
        var hay = [T.side[i] > 0 ? "long" : "short", T.exit_reason[i], T.tag[i], F.time(T.entry_time[i]), F.time(T.exit_time[i]), "#" + (i + 1)].join(" ").toLowerCase();
        if (hay.indexOf(q) < 0) continue;
      }
      idx.push(i);
    }
    var col = COLS.filter(function (c) { return c[0] === this.sortCol; }, this)[0], dir = this.dir;
    idx.sort(function (a, b) {
      var x = value(T, col, a), y = value(T, col, b);
      if (x == null || (typeof x === "number" && isNaN(x))) return 1;
      if (y == null || (typeof y === "number" && isNaN(y))) return -1;
      return (x < y ? -1 : x > y ? 1 : a - b) * dir;
    });
    return idx;
  };
  TradeList.prototype.sort = function (col) {
    this.dir = this.sortCol === col ? -this.dir : (TEXT_COLS[col] || col === "n" || col.indexOf("time") > 0 ? 1 : -1);
    this.sortCol = col;
    this.render();
  };
  TradeList.prototype.render = function () {
    var T = this.T, idx = this.rows(), body = this.table.querySelector("tbody"), frag = document.createDocumentFragment(), self = this;
    this.table.querySelectorAll("thead th").forEach(function (th) {
      th.setAttribute("aria-sort", th.dataset.col === self.sortCol ? (self.dir > 0 ? "ascending" : "descending") : "none");
    });
    idx.forEach(function (i) {
      var tr = document.createElement("tr");
      tr.className = "trade " + (T.pnl[i] > 0 ? "win" : "loss");
      tr.dataset.i = i;
      tr.innerHTML = COLS.map(function (c) {
        var v = value(T, c, i), k = c[0], cl = TEXT_COLS[k] || k.indexOf("time") > 0 ? "" : "num";
        if (c[4]) cl += " " + cls(v);
        if (k === "side") cl += v > 0 ? " side long" : " side short";
        if (k === "exit_reason") cl += " reason " + esc(v);
        return '<td class="' + cl + '">' + c[3](v) + "</td>";
      }).join("");
      frag.appendChild(tr);
    });
    if (this.n) { body.textContent = ""; body.appendChild(frag); }
    this.shown.textContent = this.n ? idx.length + " of " + this.n + " shown" : "";
  };
  TradeList.prototype.csv = function () {
    var T = this.T, idx = this.rows(), lines = [];
    var cols = ["n", "side", "entry_time", "exit_time", "size", "entry_price", "exit_price", "fees", "funding", "pnl", "return_pct",
                "exit_reason", "leverage", "liquidation_price", "mae_pct", "mfe_pct", "tag", "bars"];
    lines.push(cols.join(","));
    idx.forEach(function (i) {
      lines.push(cols.map(function (c) {
        var v = c === "n" ? i + 1 : c === "side" ? (T.side[i] > 0 ? "long" : "short") : T[c][i];
        if (c.indexOf("time") > 0) v = new Date(v * 1000).toISOString();
        v = v == null ? "" : String(v);
        return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
      }).join(","));
    });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
    a.download = (this.table.dataset.strategy || "trades").replace(/[^A-Za-z0-9_.-]+/g, "-") + "-trades.csv";
    document.body.appendChild(a); a.click(); a.remove();
  };

  // ------------------------------------------------------------------ wiring
  function parseTime(s) {
    if (s == null || s === "") return NaN;
    if (/^\d+(\.\d+)?$/.test(s)) return +s;
    s = String(s).trim().replace(" ", "T");
    if (s.length === 16) s += ":00";
    if (s.length > 10 && !/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += "Z";
    return Date.parse(s) / 1000;
  }
  var api = window.btcReport = {
    charts: charts,
    /* Zoom chart `id` (null: the first price chart) to [from, to]: epoch seconds or ISO dates. */
    zoom: function (id, from, to) {
      var c = ensure(id || order[0]) || lineCharts[id];
      if (!c) return false;
      var a = typeof from === "number" ? from : parseTime(from), b = typeof to === "number" ? to : parseTime(to);
      if (isNaN(a) || isNaN(b)) return false;
      if (b - a < c.bars.step * 5) { a -= c.bars.step * 5; b += c.bars.step * 5; }
      c.setRange(a, b);
      return true;
    },
    onReady: function (fn) { if (ready === null) fn(api); else ready.push(fn); }
  };

  var ensure = function () { return null; };
  function init(spec) {
    performance.mark("init:" + spec.id);
    var c = new PriceChart(spec);
    performance.mark("price:" + spec.id);
    charts[spec.id] = c;
    var tb = document.querySelector('.toolbar[data-chart="' + spec.id + '"]');
    if (tb) {
      tb.addEventListener("click", function (ev) {
        var b = ev.target.closest("button");
        if (!b) return;
        if (b.dataset.range) c.range(b.dataset.range);
        if (b.dataset.scale) c.setLog(b.dataset.scale === "log");
      });
      tb.addEventListener("change", function (ev) {
        var t = ev.target.dataset.toggle;
        if (t === "events") { c.showEvents = ev.target.checked; c.drawMarkers(); }
        if (t === "levels") { c.showLevels = ev.target.checked; c.drawLevels(); }
      });
    }
    var table = document.querySelector('table.trades[data-chart="' + spec.id + '"]');
    if (table) c.list = new TradeList(table, c);
    performance.mark("list:" + spec.id);
    c.equity = equityChart(spec);
    performance.mark("equity:" + spec.id);
  }

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-zoom-from]");
    if (!el) return;
    var id = el.dataset.chart || order[0];
    if (api.zoom(id, el.dataset.zoomFrom, el.dataset.zoomTo || el.dataset.zoomFrom)) {
      (charts[id] || lineCharts[id]).el.scrollIntoView({ block: "center", behavior: "instant" });
    }
  });
  document.querySelectorAll("[data-lines]").forEach(function (el) {
    var spec = (DATA.lines || {})[el.dataset.lines];
    if (spec) lineCharts[el.id] = lineChart(el, spec);
  });

  /* The first strategy is drawn at once; the others (and the comparison chart) when they come
     near the viewport, or when something asks for them (btcReport.zoom). */
  var specs = {};
  DATA.charts.forEach(function (spec) { specs[spec.id] = spec; order.push(spec.id); });
  ensure = function (id) { if (!charts[id] && specs[id]) init(specs[id]); return charts[id]; };
  var lazy = [];
  requestAnimationFrame(function () { // the frame that paints the first chart
    document.documentElement.dataset.firstChartMs = Math.round(performance.now());
  });
  order.forEach(function (id, n) {
    if (n === 0) ensure(id);
    else lazy.push([document.getElementById(id), function () { ensure(id); }]); });
  var cmp = document.getElementById("comparison-chart");
  if (cmp) lazy.push([cmp, function () { comparisonChart(cmp); }]);
  if (window.IntersectionObserver) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (en) {
        if (!en.isIntersecting) return;
        io.unobserve(en.target);
        lazy.forEach(function (x) { if (x[0] === en.target && x[1]) { var f = x[1]; x[1] = null; f(); } });
      });
    }, { rootMargin: "400px" });
    lazy.forEach(function (x) { if (x[0]) io.observe(x[0]); });
  } else lazy.forEach(function (x) { x[1](); });
  var fns = ready; ready = null;
  fns.forEach(function (fn) { fn(api); });
  document.documentElement.dataset.reportReady = "1";
})();
