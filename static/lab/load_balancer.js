/* The load balancer lab page, on top of the lab kit.
 *
 * Draws the clients (one dot per client address), the two balancers with the
 * virtual IP on the one the switch sends traffic to, and the backends with a
 * slot per unit of capacity (filled: a request in service) and their health;
 * requests, forwards, responses, health checks and heartbeats fly between them.
 * Below: latency, errors and in-service charts from the engine's time series,
 * per-backend bars, the latest requests, health-check settings.
 */
(function () {
  'use strict';

  var K = window.LabKit;
  var U = K.util;
  var $ = U.$, svg = U.svg, html = U.html, setAttr = U.setAttr, setText = U.setText;

  var CLIENTS = { x: 14, y: 44, w: 150, h: 452 };
  var LB = { x: 350, w: 160, h: 104, ys: [150, 390] };
  var BACKENDS = { x: 590, w: 296, top: 10, bottom: 530 };

  var ALGORITHM = {
    round_robin: 'Round robin',
    weighted_round_robin: 'Weighted round robin',
    least_connections: 'Least connections',
    power_of_two: 'Power of two choices',
    ip_hash: 'IP hash',
    random: 'Random',
  };

  var colourOf = U.nodeColour;

  function backendState(b) {
    if (!b.alive) return 'down';
    return b.healthy ? 'healthy' : 'ejected';
  }

  function balancerState(b) {
    return b.alive ? b.role : 'down';
  }

  function factorText(f) {
    return (Math.round(f * 10) / 10) + '×';
  }

  // ------------------------------------------------------------- the drawing
  function Drawing(lab) {
    this.lab = lab;
    this.svg = $('ring');
    this.layers = { frame: $('layer-frame'), clients: $('layer-clients'), nodes: $('layer-nodes') };
    this.backends = new Map();
    this.balancers = new Map();
    this.clients = new Map();
    this.backendKey = '';
    this.balancerKey = '';
    this.clientKey = '';
    var self = this;
    this.messages = new K.MessageLayer($('layer-messages'), {
      position: function (id) { return self.position(id); },
      build: buildMessage,
      lane: 6,
    });
  }

  Drawing.prototype.position = function (id) {
    var b = this.backends.get(id);
    if (b) return { x: b.x + 40, y: b.y + b.h / 2, hw: 40, hh: b.h / 2 };
    var l = this.balancers.get(id);
    if (l) return { x: l.x + LB.w / 2, y: l.y + LB.h / 2, hw: LB.w / 2, hh: LB.h / 2 };
    var c = this.clients.get(id);
    if (c) return { x: c.x, y: c.y, r: 7 };
    return null;
  };

  Drawing.prototype.layoutClients = function (view) {
    var ids = (view.traffic && view.traffic.clients) || [];
    var key = ids.join(',');
    if (key === this.clientKey) return;
    this.clientKey = key;
    var layer = this.layers.clients;
    U.clear(layer);
    this.clients.clear();
    svg('rect', { class: 'client-box', x: CLIENTS.x, y: CLIENTS.y, width: CLIENTS.w, height: CLIENTS.h, rx: 12 }, layer);
    var label = svg('text', { class: 'client-box-label', x: CLIENTS.x + CLIENTS.w / 2, y: CLIENTS.y + 30, 'text-anchor': 'middle' }, layer);
    label.textContent = ids.length + ' clients';
    var cols = ids.length > 48 ? 5 : 4;
    var rows = Math.ceil(ids.length / cols) || 1;
    var gx = (CLIENTS.w - 30) / cols, gy = Math.min(40, (CLIENTS.h - 60) / rows);
    var top = CLIENTS.y + 46 + ((CLIENTS.h - 60) - gy * rows) / 2;
    var self = this;
    ids.forEach(function (id, i) {
      var x = CLIENTS.x + 15 + gx * (i % cols) + gx / 2;
      var y = top + gy * Math.floor(i / cols) + gy / 2;
      var dot = svg('circle', { class: 'client-dot', cx: x.toFixed(1), cy: y.toFixed(1), r: 6, 'data-client': id }, layer);
      svg('title', null, dot).textContent = id;
      self.clients.set(id, { x: x, y: y });
    });
  };

  Drawing.prototype.layoutBalancers = function (view) {
    var ids = (view.balancers || []).map(function (b) { return b.id; });
    var key = ids.join(',');
    if (key === this.balancerKey) return false;
    this.balancerKey = key;
    var self = this;
    this.balancers.forEach(function (d) { d.g.remove(); });
    this.balancers.clear();
    ids.forEach(function (id, i) {
      var y = (LB.ys[i] != null ? LB.ys[i] : LB.ys[0] + 240 * i) - LB.h / 2;
      self.balancers.set(id, self.buildBalancer(id, LB.x - LB.w / 2, y));
    });
    return true;
  };

  Drawing.prototype.buildBalancer = function (id, x, y) {
    var g = svg('g', { class: 'node lb-node', 'data-role': 'balancer', 'data-alive': 'true', 'data-state': 'standby', 'aria-label': id, transform: 'translate(' + x + ' ' + y + ')' }, this.layers.nodes);
    svg('rect', { class: 'node-focus-rect', x: -9, y: -9, width: LB.w + 18, height: LB.h + 18, rx: 18 }, g);
    var body = svg('rect', { class: 'lb-body', width: LB.w, height: LB.h, rx: 12, 'data-menu-anchor': '' }, g);
    var name = svg('text', { class: 'lb-name', x: LB.w / 2, y: 38, 'text-anchor': 'middle' }, g);
    name.textContent = id;
    var role = svg('text', { class: 'lb-role', x: LB.w / 2, y: 68, 'text-anchor': 'middle' }, g);
    var open = svg('text', { class: 'lb-open', x: LB.w / 2, y: 92, 'text-anchor': 'middle' }, g);
    var vip = svg('g', { class: 'vip-badge', transform: 'translate(' + (LB.w / 2) + ' -16)' }, g);
    svg('rect', { x: -58, y: -17, width: 116, height: 32, rx: 16 }, vip);
    var vipText = svg('text', { y: 6, 'text-anchor': 'middle' }, vip);
    vipText.textContent = 'holds VIP';
    var k = 22;
    svg('path', { class: 'node-down-mark', d: 'M' + (LB.w / 2 - k) + ' ' + (LB.h / 2 - k) + ' l' + 2 * k + ' ' + 2 * k + ' m0 ' + (-2 * k) + ' l' + (-2 * k) + ' ' + 2 * k }, g);
    this.lab.bindNode(g, id);
    return { id: id, g: g, x: x, y: y, body: body, role: role, open: open, vip: vip };
  };

  Drawing.prototype.layoutBackends = function (view) {
    var ids = (view.backends || []).map(function (b) { return b.id; });
    var cap = (view.backends || []).map(function (b) { return b.capacity; });
    var key = JSON.stringify([ids, cap]);
    if (key === this.backendKey) return false;
    this.backendKey = key;
    var self = this;
    this.backends.forEach(function (d) { d.g.remove(); });
    this.backends.clear();
    var n = Math.max(1, ids.length);
    var pitch = (BACKENDS.bottom - BACKENDS.top) / n;
    var h = Math.min(112, pitch - 12);
    this.svg.setAttribute('data-density', h < 56 ? 'dense' : h < 84 ? 'medium' : 'roomy');
    (view.backends || []).forEach(function (b, i) {
      var y = BACKENDS.top + pitch * i + (pitch - h) / 2;
      self.backends.set(b.id, self.buildBackend(b, BACKENDS.x, y, h));
    });
    return true;
  };

  Drawing.prototype.buildBackend = function (b, x, y, h) {
    var id = b.id;
    var W = BACKENDS.w;
    var g = svg('g', { class: 'node be-node', 'data-role': 'backend', 'data-alive': 'true', 'data-state': 'healthy', 'aria-label': id, transform: 'translate(' + x + ' ' + y + ')' }, this.layers.nodes);
    svg('rect', { class: 'node-focus-rect', x: -8, y: -8, width: W + 16, height: h + 16, rx: 16 }, g);
    var body = svg('rect', { class: 'be-body', width: W, height: h, rx: 10, 'data-menu-anchor': '' }, g);
    svg('rect', { class: 'be-stripe fill-c-' + colourOf(id), width: 12, height: h, rx: 4 }, g);
    var dense = h < 56;
    var name = svg('text', { class: 'be-name', x: 24, y: dense ? h / 2 + 9 : 34, }, g);
    name.textContent = id;
    var state = svg('text', { class: 'be-state', x: dense ? 82 : 24, y: dense ? h / 2 + 7 : 62 }, g);
    var weight = svg('text', { class: 'be-weight', x: W - 10, y: dense ? 16 : 26, 'text-anchor': 'end' }, g);
    var slow = svg('g', { class: 'be-slow' }, g);
    var slowX = dense ? 140 : 86;
    svg('rect', { x: slowX, y: dense ? h / 2 - 14 : 11, width: 96, height: 30, rx: 15 }, slow);
    var slowText = svg('text', { x: slowX + 48, y: dense ? h / 2 + 6 : 32, 'text-anchor': 'middle' }, slow);
    // one slot per unit of capacity: filled while a request is in service
    var cap = Math.max(1, b.capacity || 1);
    var slotsX = dense ? 232 : 24, slotsW = W - slotsX - 12;
    var slotsY = dense ? 8 : h - 34, slotsH = dense ? h - 16 : 24;
    var slotW = slotsW / cap;
    var slots = [];
    for (var i = 0; i < cap; i++) {
      slots.push(svg('rect', { class: 'slot', x: (slotsX + i * slotW + 1).toFixed(1), y: slotsY, width: Math.max(1, slotW - 2).toFixed(1), height: slotsH, rx: 2 }, g));
    }
    var queued = svg('text', { class: 'be-queued', x: W - 10, y: dense ? h - 4 : slotsY - 8, 'text-anchor': 'end' }, g);
    var k = Math.min(22, h / 2 - 4);
    svg('path', { class: 'node-down-mark', d: 'M' + (W / 2 - k) + ' ' + (h / 2 - k) + ' l' + 2 * k + ' ' + 2 * k + ' m0 ' + (-2 * k) + ' l' + (-2 * k) + ' ' + 2 * k }, g);
    this.lab.bindNode(g, id);
    return { id: id, g: g, x: x, y: y, h: h, body: body, state: state, weight: weight, slow: slow, slowText: slowText, slots: slots, queued: queued, dense: dense };
  };

  Drawing.prototype.update = function (view) {
    var self = this;
    (view.backends || []).forEach(function (b) {
      var d = self.backends.get(b.id);
      if (!d) return;
      var state = backendState(b);
      setAttr(d.g, 'data-alive', b.alive ? 'true' : 'false');
      setAttr(d.g, 'data-state', state);
      setAttr(d.g, 'data-active', b.active);
      setAttr(d.g, 'data-queued', b.queued);
      setAttr(d.g, 'data-weight', b.weight);
      setAttr(d.g, 'data-slow-factor', b.slow_factor);
      var slowed = b.slow_factor > 1;
      d.g.classList.toggle('is-slow', slowed);
      setText(d.state, state === 'healthy' ? (b.health && b.health.fails ? 'healthy, ' + b.health.fails + ' failed check' + (b.health.fails > 1 ? 's' : '') : 'healthy') : state === 'ejected' ? 'EJECTED' : 'DOWN');
      setText(d.weight, 'weight ' + b.weight);
      d.slow.style.display = slowed ? '' : 'none';
      setText(d.slowText, factorText(b.slow_factor) + ' slow');
      for (var i = 0; i < d.slots.length; i++) setAttr(d.slots[i], 'class', i < b.active ? 'slot slot-busy' : 'slot');
      setText(d.queued, b.queued ? '+' + b.queued + ' queued' : d.dense ? '' : b.active + ' of ' + b.capacity + ' busy');
      setAttr(d.queued, 'class', b.queued ? 'be-queued has-queue' : 'be-queued');
      var label = b.id + ', backend, ' + (state === 'healthy' ? 'healthy' : state === 'ejected' ? 'ejected by the health checks' : 'down') +
        (slowed ? ', ' + factorText(b.slow_factor) + ' slower' : '') + ', ' + b.active + ' of ' + b.capacity + ' in service' +
        (b.queued ? ', ' + b.queued + ' queued' : '') + ', weight ' + b.weight;
      setAttr(d.g, 'aria-label', label);
    });
    (view.balancers || []).forEach(function (b) {
      var d = self.balancers.get(b.id);
      if (!d) return;
      var state = balancerState(b);
      setAttr(d.g, 'data-alive', b.alive ? 'true' : 'false');
      setAttr(d.g, 'data-state', state);
      setAttr(d.g, 'data-holds-vip', b.holds_vip ? 'true' : 'false');
      setAttr(d.g, 'data-switch', b.switch_points_here ? 'true' : 'false');
      setText(d.role, state === 'down' ? 'DOWN' : state);
      setText(d.open, b.alive ? b.open + ' open' : '');
      d.vip.style.display = b.holds_vip ? '' : 'none';
      setAttr(d.g, 'aria-label', b.id + ', balancer, ' + state + (b.holds_vip ? ', holds the virtual IP' : '') +
        (b.switch_points_here && !b.holds_vip ? ', the switch still sends traffic here' : '') + ', ' + b.open + ' open connections');
    });
    this.drawSwitch(view);
  };

  /** The switch's entry: where VIP traffic goes now (even to a dead balancer, until another claims it). */
  Drawing.prototype.drawSwitch = function (view) {
    var vip = view.vip || {};
    var key = JSON.stringify([vip, this.balancerKey]);
    if (key === this.switchKey) return;
    this.switchKey = key;
    var layer = this.layers.frame;
    U.clear(layer);
    var target = this.balancers.get(vip.switch_to);
    var x0 = CLIENTS.x + CLIENTS.w, y0 = CLIENTS.y + CLIENTS.h / 2;
    // the pair shares the virtual IP: its address sits between them
    var midY = (LB.ys[0] + LB.ys[1]) / 2;
    var label = svg('text', { class: 'vip-label', x: LB.x, y: midY - 4, 'text-anchor': 'middle' }, layer);
    label.textContent = 'VIP ' + (vip.address || '');
    var to = svg('text', { class: 'vip-to', x: LB.x, y: midY + 20, 'text-anchor': 'middle' }, layer);
    to.textContent = 'switch → ' + (vip.switch_to || 'nowhere');
    if (!target) {
      return;
    }
    var tx = target.x, ty = target.y + LB.h / 2;
    var dead = !(view.balancers || []).some(function (b) { return b.id === vip.switch_to && b.alive && b.holds_vip; });
    svg('path', { class: 'vip-route' + (dead ? ' is-dead' : ''), d: 'M' + x0 + ' ' + y0 + ' C' + (x0 + 70) + ' ' + y0 + ' ' + (tx - 70) + ' ' + ty + ' ' + (tx - 4) + ' ' + ty }, layer);
    svg('path', { class: 'vip-arrow' + (dead ? ' is-dead' : ''), d: 'M' + (tx - 16) + ' ' + (ty - 9) + ' L' + (tx - 3) + ' ' + ty + ' L' + (tx - 16) + ' ' + (ty + 9) }, layer);
  };

  function buildMessage(msg, g) {
    var t = msg.type;
    if (t === 'Request') {
      svg('circle', { class: 'msg-shape lb-msg-request', r: 8 }, g);
    } else if (t === 'Forward') {
      svg('circle', { class: 'msg-shape lb-msg-forward', r: 9 }, g);
    } else if (t === 'Response') {
      svg('path', { class: 'msg-shape lb-msg-response', d: 'M0 -12 L12 0 L0 12 L-12 0 Z' }, g);
      if (msg.status != null && msg.status !== 200) K.messageMark(g, false);
    } else if (t === 'HealthCheck') {
      svg('rect', { class: 'msg-shape lb-msg-health', x: -9, y: -9, width: 18, height: 18 }, g);
    } else if (t === 'HealthReply') {
      svg('rect', { class: 'msg-shape lb-msg-health msg-reply', x: -11, y: -11, width: 22, height: 22 }, g);
      if (msg.ok != null) K.messageMark(g, !!msg.ok);
    } else if (t === 'Heartbeat') {
      svg('path', { class: 'msg-shape lb-msg-heartbeat', d: 'M0 11 L-11 0 A6 6 0 0 1 0 -6 A6 6 0 0 1 11 0 Z' }, g);
    } else {
      svg('circle', { class: 'msg-shape msg-other', r: 6 }, g);
    }
  }

  // ------------------------------------------------------------------ panels
  function col(data, name) {
    return data && data[name];
  }

  function Panels(lab) {
    this.lab = lab;
    var ms = function (v) { return U.fmtMs(v); };
    this.latency = new window.LabCharts.TimeSeries($('chart-latency'), {
      unit: 'ms', yMaxAtLeast: 50, windowMs: 30000, format: ms,
      tickFormat: function (v) { return v >= 1000 ? (v / 1000) + ' s' : v + ' ms'; },
      series: [
        { key: 'p50', label: 'p50', color: 0, dash: 0, value: function (r, d) { return col(d, 'p50_ms') ? d.p50_ms[r.i] : null; } },
        { key: 'p99', label: 'p99', color: 1, dash: 1, value: function (r, d) { return col(d, 'p99_ms') ? d.p99_ms[r.i] : null; } },
      ],
    });
    this.errors = new window.LabCharts.TimeSeries($('chart-errors'), {
      unit: '%', yMaxAtLeast: 5, yMax: null, windowMs: 30000,
      format: function (v) { return (Math.round(v * 10) / 10) + '%'; },
      tickFormat: function (v) { return v + '%'; },
      series: [
        { key: 'errors', label: 'error rate', color: 1, dash: 0, value: function (r, d) { return col(d, 'error_rate') ? 100 * d.error_rate[r.i] : null; } },
      ],
    });
    this.active = new window.LabCharts.TimeSeries($('chart-active'), {
      unit: '', yMaxAtLeast: 4, windowMs: 30000, integer: true,
      format: function (v) { return (Math.round(v * 10) / 10) + ' in service'; },
      tickFormat: function (v) { return String(v); },
      series: [],
    });
  }

  Panels.prototype.render = function (frame, view) {
    this.renderFacts(view);
    this.renderStats(view);
    this.renderWarnings(view);
    this.renderCharts(view);
    this.renderBars(view);
    this.renderAlgorithm(view);
    this.renderTraffic(view);
    this.renderBackendSelect(view);
    this.renderHealth(view);
    this.renderRecent(view);
  };

  Panels.prototype.renderFacts = function (view) {
    setText($('algorithm-value'), ALGORITHM[view.algorithm] || view.algorithm || '–');
    var vip = view.vip || {};
    var holders = vip.holders || [];
    setText($('vip-value'), holders.length ? holders.join(' + ') : 'nobody');
  };

  function tile(id, value, level) {
    var el = $(id);
    setText(el.querySelector('.stat-value'), value);
    setAttr(el, 'data-level', level || '');
  }

  Panels.prototype.renderStats = function (view) {
    var s = view.stats || {};
    var base = (view.params && view.params.service_ms) || 20;
    tile('stat-rps', s.rps != null ? String(Math.round(s.rps)) : '–');
    tile('stat-p50', U.fmtMs(s.p50_ms), s.p50_ms > 5 * base ? 'warn' : '');
    tile('stat-p99', U.fmtMs(s.p99_ms), s.p99_ms > 15 * base ? 'bad' : s.p99_ms > 5 * base ? 'warn' : '');
    tile('stat-errors', s.error_rate != null ? U.fmtPct(s.error_rate, s.error_rate && s.error_rate < 0.1 ? 1 : 0) : '–',
      s.error_rate > 0.05 ? 'bad' : s.error_rate > 0 ? 'warn' : '');
    var h = view.health || {};
    tile('stat-flaps', (h.ejections || 0) + ' · ' + (h.flaps || 0), h.flaps ? 'warn' : '');
    setAttr($('lb-stats'), 'data-p99', s.p99_ms == null ? '' : s.p99_ms);
  };

  Panels.prototype.renderWarnings = function (view) {
    var w = view.warnings || [];
    var box = $('lb-warnings');
    box.hidden = !w.length;
    setText(box, w.length ? '⚠ ' + w.join('; ') : '');
  };

  Panels.prototype.renderCharts = function (view) {
    var data = view.series || {};
    var ids = (view.backends || []).map(function (b) { return b.id; });
    this.active.setSeries(ids.map(function (id, i) {
      return {
        key: id, label: id, color: colourOf(id), dash: i % 4,
        value: function (r, d) { var c = d && d.active && d.active[id]; return c ? c[r.i] : null; },
      };
    }));
    var markers = this.lab.markers;
    [this.latency, this.errors, this.active].forEach(function (chart) {
      chart.setMarkers(markers);
      chart.update(data);
    });
  };

  Panels.prototype.renderBars = function (view) {
    var backends = view.backends || [];
    var ids = backends.map(function (b) { return b.id; });
    var data = view.series || {};
    var per = data.per_backend || {};
    var points = Math.max(1, Math.round(((view.stats && view.stats.window_ms) || 2000) / (data.interval_ms || 100)));
    var counts = {}, total = 0;
    ids.forEach(function (id) {
      var c = per[id] || [];
      var sum = 0;
      for (var i = Math.max(0, c.length - points); i < c.length; i++) sum += c[i] || 0;
      counts[id] = sum;
      total += sum;
    });
    var share = U.barList($('share-bars'), ids);
    var active = U.barList($('active-bars'), ids);
    backends.forEach(function (b) {
      var s = share[b.id], a = active[b.id];
      [s, a].forEach(function (li) {
        setAttr(li, 'data-alive', b.alive ? 'true' : 'false');
        li.classList.toggle('is-slow', b.slow_factor > 1);
      });
      var frac = total ? counts[b.id] / total : 0;
      U.setBar(s, frac, Math.round(100 * frac) + '% (' + counts[b.id] + ')' + (b.slow_factor > 1 ? ' · ' + factorText(b.slow_factor) + ' slow' : ''), counts[b.id]);
      U.setBar(a, b.active / Math.max(1, b.capacity), b.active + ' of ' + b.capacity + (b.queued ? ', +' + b.queued + ' queued' : '') +
        (b.alive ? (b.healthy ? '' : ' · ejected') : ' · down'), b.active);
    });
  };

  Panels.prototype.renderAlgorithm = function (view) {
    setText($('algorithm-info'), view.algorithm_info ? (ALGORITHM[view.algorithm] || view.algorithm) + ': ' + view.algorithm_info + '.' : '');
    if (this.lab.dirty.algorithm) return;
    var radio = $('algorithm-' + view.algorithm);
    if (radio && !radio.checked) radio.checked = true;
  };

  Panels.prototype.showRate = function (rate) {
    setText($('traffic-rate-label'), rate + ' req/s');
    setAttr($('traffic-rate'), 'aria-valuetext', rate + ' requests per second');
  };

  Panels.prototype.renderTraffic = function (view) {
    var rate = view.traffic && view.traffic.rate_rps;
    if (rate == null || this.lab.touching('traffic-rate') || this.lab.dirty.traffic) return;
    var slider = $('traffic-rate');
    if (String(Math.round(rate)) !== slider.value) slider.value = String(Math.round(rate));
    this.showRate(Math.round(rate));
  };

  Panels.prototype.renderBackendSelect = function (view) {
    var ids = (view.backends || []).map(function (b) { return b.id; });
    if (this.lab.changed('backend-select', ids)) U.fillSelect($('backend-id'), ids);
  };

  Panels.prototype.renderHealth = function (view) {
    var h = view.health || {};
    setText($('health-state'), (h.checked_by ? h.checked_by + ' probes' : 'Nobody probes') + ' each backend every ' + h.interval_ms + ' ms (' +
      h.timeout_ms + ' ms to answer): ejected after ' + h.unhealthy_threshold + ' failures in a row, back after ' + h.healthy_threshold +
      ' successes. So far ' + (h.ejections || 0) + ' ejections, ' + (h.readmissions || 0) + ' re-admissions, ' + (h.flaps || 0) + ' flaps.');
    setAttr($('health-state'), 'data-level', h.flaps ? 'bad' : '');
    var form = $('health-form');
    if (this.lab.dirty.health || form.contains(document.activeElement)) return;
    var fields = { 'health-interval': h.interval_ms, 'health-timeout': h.timeout_ms, 'health-unhealthy': h.unhealthy_threshold, 'health-healthy': h.healthy_threshold };
    Object.keys(fields).forEach(function (id) {
      if (fields[id] != null && $(id).value !== String(fields[id])) $(id).value = String(fields[id]);
    });
  };

  Panels.prototype.renderRecent = function (view) {
    var recent = view.recent || [];
    if (!this.lab.changed('recent', recent.length ? [recent.length, recent[recent.length - 1].id] : [])) return;
    var tbody = $('recent').tBodies[0];
    var rows = document.createDocumentFragment();
    if (!recent.length) {
      var empty = html('tr', { class: 'history-empty' });
      empty.appendChild(html('td', { colspan: 5 }, 'No requests yet.'));
      rows.appendChild(empty);
    }
    for (var i = recent.length - 1; i >= Math.max(0, recent.length - 12); i--) {
      var r = recent[i];
      var ok = r.status === 'ok';
      var tr = html('tr', { class: 'op ' + (ok ? 'op-ok' : 'op-fail'), 'data-status': r.status });
      tr.appendChild(html('td', null, String(r.id)));
      tr.appendChild(html('td', null, r.client));
      tr.appendChild(html('td', null, r.backend || '–'));
      tr.appendChild(html('td', { class: 'num' }, U.fmtMs(r.latency_ms)));
      tr.appendChild(html('td', { class: 'op-status' }, ok ? 'ok' : (r.code ? r.code + ' ' : '') + (r.why || r.status)));
      rows.appendChild(tr);
    }
    tbody.replaceChildren(rows);
  };

  function summary(view) {
    var parts = [];
    (view.balancers || []).forEach(function (b) {
      parts.push(b.id + ' ' + balancerState(b) + (b.holds_vip ? ' and holds the VIP' : ''));
    });
    (view.backends || []).forEach(function (b) {
      parts.push(b.id + ' ' + backendState(b) + (b.slow_factor > 1 ? ' ' + factorText(b.slow_factor) + ' slow' : '') + ', ' + b.active + ' of ' + b.capacity + ' in service');
    });
    return (ALGORITHM[view.algorithm] || view.algorithm) + '. ' + parts.join('; ') + '.';
  }

  // ---------------------------------------------------------------- controls
  function wire(lab, panels) {
    Array.prototype.forEach.call(document.querySelectorAll('input[name=algorithm]'), function (radio) {
      radio.addEventListener('change', function () {
        if (!radio.checked) return;
        lab.dirty.algorithm = true;
        lab.command({ op: 'set_algorithm', algorithm: radio.value }).then(function () { lab.dirty.algorithm = false; });
      });
    });

    var rate = $('traffic-rate');
    rate.addEventListener('input', function () {
      lab.touched['traffic-rate'] = Date.now();
      lab.dirty.traffic = true;
      panels.showRate(parseInt(rate.value, 10));
    });
    rate.addEventListener('change', function () {
      lab.touched['traffic-rate'] = Date.now();
      lab.command({ op: 'traffic', rate_rps: parseInt(rate.value, 10) || 0 }).then(function () { lab.dirty.traffic = false; });
    });

    $('btn-add-backend').addEventListener('click', function () { lab.command({ op: 'add_backend' }); });

    $('backend-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var node = $('backend-id').value;
      var factor = parseFloat($('slow-factor').value);
      if (!isFinite(factor) || factor < 1 || factor > 50) {
        lab.showError('"Slower by" must be a number from 1 (normal speed) to 50.');
        $('slow-factor').focus();
        return;
      }
      lab.command({ op: 'slow', node: node, factor: factor });
    });
    $('btn-weight').addEventListener('click', function () {
      var weight = lab.intField('backend-weight', 1, 100, 'The weight must be a whole number from 1 to 100.');
      if (weight != null) lab.command({ op: 'set_weight', node: $('backend-id').value, weight: weight });
    });

    ['health-interval', 'health-timeout', 'health-unhealthy', 'health-healthy'].forEach(function (id) {
      $(id).addEventListener('input', function () { lab.dirty.health = true; });
    });
    $('health-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var interval = parseFloat($('health-interval').value), timeout = parseFloat($('health-timeout').value);
      if (!isFinite(interval) || interval < 10 || interval > 60000 || !isFinite(timeout) || timeout < 1 || timeout > 60000) {
        lab.showError('The probe interval must be 10 to 60000 ms, and its timeout 1 to 60000 ms.');
        return;
      }
      var unhealthy = lab.intField('health-unhealthy', 1, 20, 'Eject after 1 to 20 failures in a row.');
      if (unhealthy == null) return;
      var healthy = lab.intField('health-healthy', 1, 20, 'Re-admit after 1 to 20 successes in a row.');
      if (healthy == null) return;
      lab.command({ op: 'health', interval_ms: interval, timeout_ms: timeout, unhealthy_threshold: unhealthy, healthy_threshold: healthy })
        .then(function () { lab.dirty.health = false; });
    });
  }

  function nodeMenu(id, lab) {
    var b = lab.model.node(id, 'backends');
    if (b) {
      var slowed = b.slow_factor > 1;
      var next = slowed ? Math.min(50, b.slow_factor * 2) : 5;
      return {
        title: id + ': backend, ' + backendState(b) + (slowed ? ', ' + factorText(b.slow_factor) + ' slow' : ''),
        facts: b.active + ' of ' + b.capacity + ' in service · ' + b.queued + ' queued · served ' + b.served + ' · ' + b.errors + ' errors · weight ' + b.weight,
        actions: [
          { action: 'slow', label: 'Slow ' + id + ' down ' + factorText(next), disabled: !b.alive || b.slow_factor >= 50, cmd: { op: 'slow', node: id, factor: next } },
          { action: 'normal', label: 'Back to normal speed', disabled: !slowed, cmd: { op: 'slow', node: id, factor: 1 } },
          { action: 'crash', label: 'Crash ' + id, disabled: !b.alive, cmd: { op: 'crash', node: id } },
          { action: 'restart', label: 'Restart ' + id, disabled: b.alive, cmd: { op: 'restart', node: id } },
          { action: 'weight_up', label: 'Weight ' + b.weight + ' → ' + (b.weight + 1), disabled: b.weight >= 100, cmd: { op: 'set_weight', node: id, weight: b.weight + 1 } },
          { action: 'weight_down', label: 'Weight ' + b.weight + ' → ' + (b.weight - 1), disabled: b.weight <= 1, cmd: { op: 'set_weight', node: id, weight: b.weight - 1 } },
          { action: 'remove', label: 'Remove ' + id + ' from the pool', danger: true, cmd: { op: 'remove_backend', node: id } },
        ],
      };
    }
    var l = lab.model.node(id, 'balancers');
    var alive = l ? !!l.alive : true;
    return {
      title: id + ': balancer, ' + (l ? balancerState(l) : 'unknown') + (l && l.holds_vip ? ', holds the VIP' : ''),
      facts: l ? 'priority ' + l.priority + ' · ' + l.open + ' open · forwarded ' + l.forwarded : '',
      actions: [
        { action: 'crash', label: 'Crash ' + id, disabled: !alive, cmd: { op: 'crash', node: id } },
        { action: 'restart', label: 'Restart ' + id, disabled: alive, cmd: { op: 'restart', node: id } },
      ],
    };
  }

  // ------------------------------------------------------------------- start
  var drawing = null, panels = null;
  K.start({
    name: 'lbLab',
    init: function (lab) {
      drawing = new Drawing(lab);
      panels = new Panels(lab);
      wire(lab, panels);
    },
    frame: function (frame, view, ctx) {
      if (ctx.newEpoch) drawing.messages.clear();
      drawing.layoutClients(view);
      var relaid = drawing.layoutBalancers(view);
      relaid = drawing.layoutBackends(view) || relaid;
      if (relaid) { ctx.lab.closeMenu(false); drawing.switchKey = ''; }
      drawing.update(view);
      drawing.messages.sync(view.messages);
      panels.render(frame, view);
      setText($('ring-summary'), summary(view));
    },
    tick: function (now) {
      drawing.messages.draw(now);
    },
    menu: nodeMenu,
    marker: function (e) {
      if (e.kind === 'config' && e.algorithm) return '→ ' + (ALGORITHM[e.algorithm] || e.algorithm);
      var rate = /^clients now send ([\d.]+) requests/.exec(e.text);
      if (rate) return rate[1] + ' req/s';
      var health = /^\S+ (ejected|re-admitted) (\S+)/.exec(e.text);
      if (health) return health[2] + ' ' + health[1] + (e.flap ? ' (flap)' : '');
      var takeover = /^(\S+) became active/.exec(e.text);
      if (takeover) return takeover[1] + ' takes the VIP';
      if (e.kind === 'fault' || e.kind === 'failover' || e.kind === 'config') return U.shortLabel(e.text.replace(/ is now /, ' '));
      return null;
    },
    partitionIds: function (view) {
      return (view.balancers || []).concat(view.backends || []).map(function (n) { return n.id; });
    },
  });
})();
