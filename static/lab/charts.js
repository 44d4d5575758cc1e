/* Live time-series charts in SVG, no dependencies.
 *
 *   const chart = new LabCharts.TimeSeries(document.getElementById('chart-latency'), {
 *     unit: 'ms',                           // shown on the y axis and in the summary
 *     format: (v) => v.toFixed(0) + ' ms',  // a value for people (default: number + unit)
 *     yMin: 0, yMaxAtLeast: 50,             // the y range grows to fit the data, never below this
 *     yMax: 1,                              // or a fixed top (e.g. a ratio)
 *     integer: true,                        // counts: whole-number ticks only
 *     windowMs: 20000,                      // the x axis shows the latest 20 s of virtual time
 *     series: [{key: 'p99', label: 'p99', color: 1, dash: 0, value: (row) => row.p99_ms}],
 *   });
 *   chart.update(view.series);              // rows [{t, ...}] with a virtual time `t` in ms,
 *                                           // or columns {t: [...], rps: [...], ...}: then a
 *                                           // series reads value(row, columns) with row = {t, i}
 *   chart.setSeries([...]);                 // when the set of series changes (a node joined)
 *   chart.setMarkers([{t, label}]);         // moments to mark with a labelled vertical line
 *
 * The figure comes from templates/lab/_kit/chart.html: a title, a legend (each
 * item shows its series' latest value), the plot, and a summary paragraph that
 * is the chart's text alternative ("p99: now 310 ms, up from 42 ms; peak 340
 * ms in the last 20 s"). Sizes follow the page's font size, so "Large type"
 * enlarges the axes too; colours come from CSS (.c-0 .. .c-7) and every series
 * also has its own dash pattern, so colour is never the only cue.
 */
(function (global) {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG_NS, tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function setText(node, text) {
    text = String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  /** Round numbers for axis ticks: 1, 2, 2.5, 5 x 10^k, about `count` of them. */
  function niceStep(range, count) {
    if (!(range > 0)) return 1;
    var raw = range / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * mag >= raw) return steps[i] * mag;
    return 10 * mag;
  }

  function trimNumber(v) {
    var abs = Math.abs(v);
    var digits = abs >= 100 || abs === 0 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
    return String(Number(v.toFixed(digits)));
  }

  function TimeSeries(figure, options) {
    this.figure = figure;
    this.opts = options || {};
    this.unit = this.opts.unit || '';
    this.format = this.opts.format || function (v) { return trimNumber(v) + (this.unit ? ' ' + this.unit : ''); }.bind(this);
    this.tickFormat = this.opts.tickFormat || this.format;
    this.windowMs = this.opts.windowMs || 20000;
    this.plot = figure.querySelector('.chart-plot');
    this.legend = figure.querySelector('.chart-legend');
    this.summary = figure.querySelector('.chart-summary');
    var title = figure.querySelector('.chart-title');
    this.svg = svg('svg', {
      class: 'chart-svg', role: 'img', focusable: 'false',
      'aria-label': title ? title.textContent : 'chart',
      'aria-describedby': this.summary ? this.summary.id : null,
    }, this.plot);
    this.gGrid = svg('g', { class: 'chart-grid' }, this.svg);
    this.gAxes = svg('g', { class: 'chart-axes' }, this.svg);
    this.gMarkers = svg('g', { class: 'chart-markers' }, this.svg);
    this.gLines = svg('g', { class: 'chart-lines' }, this.svg);
    this.empty = svg('text', { class: 'chart-empty', 'text-anchor': 'middle' }, this.svg);
    this.rows = [];
    this.data = null;
    this.lines = new Map(); // key -> {path, dot, legendItem, valueEl}
    this.series = [];
    this.markers = [];
    this.setSeries(this.opts.series || []);
    var self = this;
    if (global.ResizeObserver) {
      new ResizeObserver(function () { self.render(); }).observe(this.plot);
    }
    document.addEventListener('patternslab:prefs', function () { self.render(); });
  }

  TimeSeries.prototype.setSeries = function (series) {
    var keys = series.map(function (s) { return s.key + '|' + s.label + '|' + s.color + '|' + s.dash; }).join(',');
    if (keys === this.seriesKey) { this.series = series; return; }
    this.seriesKey = keys;
    this.series = series;
    var self = this;
    this.lines.forEach(function (l) { l.path.remove(); l.dot.remove(); });
    this.lines.clear();
    if (this.legend) this.legend.replaceChildren();
    series.forEach(function (s, i) {
      var cls = 'c-' + (s.color == null ? i : s.color) % 8 + ' dash-' + (s.dash == null ? i : s.dash) % 4;
      var path = svg('path', { class: 'chart-line ' + cls, 'data-series': s.key }, self.gLines);
      var dot = svg('circle', { class: 'chart-dot ' + cls, r: 5 }, self.gLines);
      var item = null, valueEl = null;
      if (self.legend) {
        item = document.createElement('li');
        item.setAttribute('data-series', s.key);
        var sw = svg('svg', { class: 'chart-swatch', viewBox: '0 0 36 12', 'aria-hidden': 'true' }, item);
        svg('line', { class: 'chart-line ' + cls, x1: 1, y1: 6, x2: 35, y2: 6 }, sw);
        var label = document.createElement('span');
        label.className = 'chart-legend-label';
        label.textContent = s.label;
        valueEl = document.createElement('span');
        valueEl.className = 'chart-legend-value';
        item.appendChild(label);
        item.appendChild(valueEl);
        self.legend.appendChild(item);
      }
      self.lines.set(s.key, { path: path, dot: dot, item: item, valueEl: valueEl });
    });
    this.render();
  };

  TimeSeries.prototype.setMarkers = function (markers) {
    var sig = markers.map(function (m) { return m.t + ':' + m.label; }).join('|');
    if (sig === this.markerSig) return;
    this.markerSig = sig;
    this.markers = markers;
    this.render();
  };

  TimeSeries.prototype.update = function (data) {
    var rows = data || [];
    if (!Array.isArray(rows)) {
      var ts = Array.isArray(rows.t) ? rows.t : [];
      rows = ts.map(function (t, i) { return { t: t, i: i }; });
    }
    this.data = data;
    var last = rows.length ? rows[rows.length - 1] : null;
    var sig = rows.length + ':' + (last ? last.t : '') + ':' + this.seriesKey;
    if (sig === this.sig) return;
    this.sig = sig;
    this.rows = rows;
    this.render();
  };

  TimeSeries.prototype.measure = function () {
    var w = Math.round(this.plot.clientWidth);
    var h = Math.round(this.plot.clientHeight);
    var font = parseFloat(getComputedStyle(this.svg).fontSize) || 16;
    return { w: Math.max(w, 120), h: Math.max(h, 80), font: font };
  };

  TimeSeries.prototype.render = function () {
    var m = this.measure();
    var W = m.w, H = m.h, f = m.font;
    this.svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    this.svg.setAttribute('width', W);
    this.svg.setAttribute('height', H);
    var pad = { l: f * 4.6, r: f * 0.9, t: f * 0.8, b: f * 1.9 };
    var pw = Math.max(10, W - pad.l - pad.r), ph = Math.max(10, H - pad.t - pad.b);
    var rows = this.rows;
    var series = this.series;
    var opts = this.opts;
    var data = this.data;

    // x: the latest windowMs of virtual time. A young run draws from the left edge and
    // grows to the right, over at least 5 s, until it fills the window and scrolls.
    var tLast = rows.length ? rows[rows.length - 1].t : 0;
    var tFirst = rows.length ? rows[0].t : 0;
    var tMin = Math.max(tFirst, tLast - this.windowMs);
    var tMax = Math.max(tLast, tMin + Math.min(this.windowMs, 5000));
    var visible = rows.filter(function (r) { return r.t >= tMin; });
    if (visible.length < rows.length && rows.length) {
      // keep the point just before the window so lines reach the left edge
      var before = rows[rows.length - visible.length - 1];
      if (before) visible.unshift(before);
    }

    // y: from yMin (0) to a nice top that fits the data
    var yMin = opts.yMin == null ? 0 : opts.yMin;
    var dataMax = -Infinity;
    visible.forEach(function (r) {
      series.forEach(function (s) {
        var v = s.value(r, data);
        if (v != null && isFinite(v) && v > dataMax) dataMax = v;
      });
    });
    var yTop = opts.yMax != null ? opts.yMax : Math.max(opts.yMaxAtLeast || 1, dataMax * 1.1);
    var step = niceStep(yTop - yMin, ph / (f * 2.6));
    if (opts.integer && step < 1) step = 1;
    else if (opts.integer && step === 2.5) step = 2;
    if (opts.yMax == null) yTop = Math.ceil(yTop / step) * step;
    var x = function (t) { return pad.l + ((t - tMin) / (tMax - tMin || 1)) * pw; };
    var y = function (v) { return pad.t + ph - ((Math.min(v, yTop) - yMin) / (yTop - yMin || 1)) * ph; };

    // grid and axes
    var grid = this.gGrid, axes = this.gAxes;
    grid.replaceChildren();
    axes.replaceChildren();
    for (var v = yMin; v <= yTop + step * 0.001; v += step) {
      var yy = y(v);
      svg('line', { class: v === yMin ? 'chart-axis' : 'chart-gridline', x1: pad.l, x2: pad.l + pw, y1: yy, y2: yy }, grid);
      var label = svg('text', { class: 'chart-tick', x: pad.l - f * 0.4, y: yy + f * 0.35, 'text-anchor': 'end' }, axes);
      label.textContent = this.tickFormat(v);
    }
    svg('line', { class: 'chart-axis', x1: pad.l, x2: pad.l, y1: pad.t, y2: pad.t + ph }, grid);
    var secStep = niceStep((tMax - tMin) / 1000, pw / (f * 5.5)) * 1000;
    var firstTick = Math.ceil(Math.max(0, tMin) / secStep) * secStep;
    for (var t = firstTick; t <= tMax + 1e-6; t += secStep) {
      var xx = x(t);
      svg('line', { class: 'chart-axis', x1: xx, x2: xx, y1: pad.t + ph, y2: pad.t + ph + f * 0.35 }, grid);
      var tl = svg('text', { class: 'chart-tick', x: xx, y: pad.t + ph + f * 1.45, 'text-anchor': 'middle' }, axes);
      tl.textContent = trimNumber(t / 1000) + ' s';
    }

    // markers: the latest few inside the window, labels stacked so that neighbours do not collide
    var gm = this.gMarkers;
    gm.replaceChildren();
    var shown = this.markers.filter(function (mk) { return mk.t >= tMin && mk.t <= tMax; }).slice(-4);
    var rowsUsed = [];
    shown.forEach(function (mk) {
      var mx = x(mk.t);
      svg('line', { class: 'chart-marker', x1: mx, x2: mx, y1: pad.t, y2: pad.t + ph }, gm);
      var width = mk.label.length * f * 0.55 + 6;
      var left = mx + width > pad.l + pw ? mx - width - 4 : mx + 4;
      var row = 0;
      while (rowsUsed[row] != null && rowsUsed[row] > left - 4) row += 1;
      rowsUsed[row] = left + width;
      var label = svg('text', { class: 'chart-marker-label', x: left.toFixed(1), y: (pad.t + f * (1 + 1.15 * row)).toFixed(1) }, gm);
      label.textContent = mk.label;
    });

    // lines
    var self = this;
    var summaries = [];
    series.forEach(function (s) {
      var line = self.lines.get(s.key);
      if (!line) return;
      var d = '';
      var pen = false;
      var lastV = null, maxV = null, firstV = null;
      visible.forEach(function (r) {
        var val = s.value(r, data);
        if (val == null || !isFinite(val)) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(Math.max(r.t, tMin)).toFixed(1) + ' ' + y(val).toFixed(1);
        pen = true;
        if (r.t >= tMin) {
          if (firstV == null) firstV = val;
          lastV = val;
          if (maxV == null || val > maxV) maxV = val;
        }
      });
      line.path.setAttribute('d', d || 'M0 0');
      line.path.style.display = d ? '' : 'none';
      if (lastV != null) {
        line.dot.style.display = '';
        line.dot.setAttribute('cx', x(tLast).toFixed(1));
        line.dot.setAttribute('cy', y(lastV).toFixed(1));
      } else {
        line.dot.style.display = 'none';
      }
      var shown = lastV == null ? '–' : self.format(lastV);
      if (line.valueEl) setText(line.valueEl, shown);
      if (line.item) line.item.setAttribute('data-value', lastV == null ? '' : String(lastV));
      line.path.setAttribute('data-last', lastV == null ? '' : String(lastV));
      if (lastV != null) {
        var text = s.label + ': now ' + self.format(lastV);
        if (firstV != null && visible.length > 2 && Math.abs(lastV - firstV) > 0.15 * Math.max(Math.abs(firstV), 1e-9)) {
          text += lastV > firstV ? ', up from ' + self.format(firstV) : ', down from ' + self.format(firstV);
        }
        if (maxV != null && maxV > lastV * 1.15) text += '; peak ' + self.format(maxV);
        summaries.push(text);
      }
    });
    var shownS = Math.round(Math.min(this.windowMs, Math.max(0, tLast - tFirst)) / 1000);
    this.empty.setAttribute('x', pad.l + pw / 2);
    this.empty.setAttribute('y', pad.t + ph / 2);
    setText(this.empty, summaries.length ? '' : 'No data yet');
    if (this.summary) {
      setText(this.summary, summaries.length
        ? summaries.join('. ') + (shownS ? ' (last ' + shownS + ' s of virtual time).' : '.')
        : 'No data yet.');
    }
    this.figure.setAttribute('data-points', String(rows.length));
  };

  global.LabCharts = { TimeSeries: TimeSeries, niceStep: niceStep };
})(window);
