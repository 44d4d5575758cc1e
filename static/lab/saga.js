/* The saga lab page, on top of the lab kit.
 *
 * Draws the saga's DEFINITION GRAPH: the forward steps left to right (one box
 * per service: its action), each step's compensation beneath it, and the
 * compensations chained right to left. One saga is OVERLAID on it (the latest,
 * or the one picked in the list): done steps ticked, the running step lit, the
 * failed one crossed, compensations lit and numbered in the order they ran.
 * The orchestrator sits above, the event bus below; commands and events fly
 * between them and the services. Beside and below: controls (place an order,
 * traffic, mode, failures), recent sagas, the orchestrator's log, the ledger,
 * each service's own data, charts.
 */
(function () {
  'use strict';

  var K = window.LabKit;
  var U = K.util;
  var $ = U.$, svg = U.svg, html = U.html, setAttr = U.setAttr, setText = U.setText;

  var STEP = { x0: 22, w: 206, gap: 44, y: 150, h: 104 };
  var COMP = { y: 340, h: 80 };
  var ORCH = { x: 390, y: 12, w: 220, h: 70 };
  var BUS = { x: 22, y: 486, w: 956, h: 48 };
  var CLIENT = { x: 22, y: 22, w: 150, h: 56 };

  var STATUS_WORD = {
    idle: 'not started', running: 'running', done: 'done', failed: 'failed',
    compensating: 'undoing', compensated: 'undone', skipped: 'skipped',
  };

  function stepX(i) { return STEP.x0 + i * (STEP.w + STEP.gap); }

  /** A step's forward status, in our few words. */
  function forwardStatus(s) {
    var st = String((s && s.status) || 'pending').toLowerCase();
    if (/^(done|ok|completed|succeeded|success|applied)$/.test(st)) return 'done';
    if (/^(running|in_progress|sent|started|waiting|active)$/.test(st)) return 'running';
    if (/^(failed|error|declined|rejected)$/.test(st)) return 'failed';
    if (/^(compensating|undoing)$/.test(st)) return 'compensating';
    if (/^(compensated|undone|rolled_back)$/.test(st)) return 'compensated';
    if (/^(skipped|not_run|cancelled)$/.test(st)) return 'skipped';
    return 'idle';
  }

  /** A step's compensation status: idle | running | done. */
  function compStatus(s) {
    var fw = forwardStatus(s);
    var c = s && s.compensation;
    if (c && typeof c === 'object') c = c.status;
    var cs = typeof c === 'string' ? c.toLowerCase() : '';
    if (/^(done|ok|completed|compensated|applied|succeeded)$/.test(cs)) return 'done';
    if (/^(running|in_progress|sent|compensating|pending_ack|started)$/.test(cs)) return 'running';
    if (fw === 'compensated') return 'done';
    if (fw === 'compensating') return 'running';
    return 'idle';
  }

  function sagaStatus(s) { return String((s && s.status) || 'running').toLowerCase(); }
  function isEnded(s) { return /^(completed|compensated|failed|aborted|stuck)$/.test(sagaStatus(s)); }

  function sortedSagas(view) {
    return (view.sagas || []).slice().sort(function (a, b) {
      return (a.started_ms || 0) - (b.started_ms || 0) || String(a.id).localeCompare(String(b.id), undefined, { numeric: true });
    });
  }

  function definition(view) {
    var d = view.definition || [];
    if (d.length) return d;
    return [
      { service: 'order', action: 'create order', compensation: 'cancel order' },
      { service: 'inventory', action: 'reserve items', compensation: 'release items' },
      { service: 'payment', action: 'charge card', compensation: 'refund' },
      { service: 'shipping', action: 'schedule shipment', compensation: 'cancel shipment' },
    ];
  }

  function fmtValue(v) {
    if (v == null) return '–';
    if (typeof v === 'number') return String(Math.round(v * 100) / 100);
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (Array.isArray(v)) return v.length + (v.length === 1 ? ' item' : ' items');
    if (typeof v === 'object') {
      var keys = Object.keys(v);
      if (keys.length <= 4 && keys.every(function (k) { return typeof v[k] !== 'object' || v[k] == null; })) {
        return keys.map(function (k) { return k + ' ' + fmtValue(v[k]); }).join(', ');
      }
      return keys.length + (keys.length === 1 ? ' entry' : ' entries');
    }
    return String(v);
  }

  function human(key) { return String(key).replace(/_/g, ' '); }

  /** {service: {mode, p}} for the services set to fail. */
  function failuresOf(view) {
    var out = {};
    (view.services || []).forEach(function (s) { if (s.failure) out[s.id] = s.failure; });
    return out;
  }

  function orderText(o) {
    if (!o) return '';
    return o.customer + ' buys ' + o.qty + ' ' + o.item + ' for $' + o.amount;
  }

  // ------------------------------------------------------------- the drawing
  function Drawing(lab) {
    this.lab = lab;
    this.svg = $('ring');
    this.layers = { frame: $('layer-frame'), edges: $('layer-edges'), nodes: $('layer-nodes') };
    this.steps = [];
    this.byService = {};
    this.defKey = '';
    this.orch = null;
    this.bus = null;
    var self = this;
    this.messages = new K.MessageLayer($('layer-messages'), {
      position: function (id) { return self.position(id); },
      build: buildMessage,
      lane: 7,
    });
  }

  Drawing.prototype.position = function (id) {
    var i = this.byService[id];
    if (i != null) return { x: stepX(i) + STEP.w / 2, y: STEP.y + STEP.h / 2, hw: STEP.w / 2, hh: STEP.h / 2 };
    if (id === 'orchestrator' || id === 'orch') return { x: ORCH.x + ORCH.w / 2, y: ORCH.y + ORCH.h / 2, hw: ORCH.w / 2, hh: ORCH.h / 2 };
    if (id === 'bus' || id === 'broker') return { x: BUS.x + BUS.w / 2, y: BUS.y + BUS.h / 2, hw: 60, hh: BUS.h / 2 };
    return { x: CLIENT.x + CLIENT.w / 2, y: CLIENT.y + CLIENT.h / 2, hw: CLIENT.w / 2, hh: CLIENT.h / 2 };
  };

  Drawing.prototype.layout = function (view) {
    var def = definition(view);
    var key = JSON.stringify(def);
    if (key === this.defKey) return false;
    this.defKey = key;
    var self = this;
    U.clear(this.layers.frame);
    U.clear(this.layers.edges);
    U.clear(this.layers.nodes);
    this.steps = [];
    this.byService = {};
    var frame = this.layers.frame, edges = this.layers.edges;

    // the client
    svg('rect', { class: 'client-box', x: CLIENT.x, y: CLIENT.y, width: CLIENT.w, height: CLIENT.h, rx: 28 }, frame);
    svg('text', { class: 'client-box-label', x: CLIENT.x + CLIENT.w / 2, y: CLIENT.y + 36, 'text-anchor': 'middle' }, frame).textContent = 'customers';
    svg('text', { class: 'row-label', x: 990, y: STEP.y - 14, 'text-anchor': 'end' }, frame).textContent = 'forward steps →';
    svg('text', { class: 'row-label row-label-undo', x: 990, y: COMP.y + COMP.h + 28, 'text-anchor': 'end' }, frame).textContent = '← compensations (undo, in reverse)';

    def.forEach(function (d, i) {
      var x = stepX(i);
      self.byService[d.service] = i;
      // forward edge to the next step, and the compensation chain beneath (right to left)
      if (i < def.length - 1) {
        var fwd = svg('path', { class: 'saga-edge fwd-edge', d: 'M' + (x + STEP.w + 4) + ' ' + (STEP.y + STEP.h / 2) + ' L' + (stepX(i + 1) - 6) + ' ' + (STEP.y + STEP.h / 2), 'marker-end': 'url(#saga-arrow)' }, edges);
        var back = svg('path', { class: 'saga-edge comp-edge', d: 'M' + (stepX(i + 1) - 4) + ' ' + (COMP.y + COMP.h / 2) + ' L' + (x + STEP.w + 6) + ' ' + (COMP.y + COMP.h / 2), 'marker-end': 'url(#saga-arrow)' }, edges);
        self.steps[i] = self.steps[i] || {};
        self.steps[i].fwdEdge = fwd;
        self.steps[i].backEdge = back; // from step i+1's compensation to step i's
      }
      var undo = svg('path', { class: 'saga-edge undo-edge', d: 'M' + (x + STEP.w / 2) + ' ' + (STEP.y + STEP.h + 4) + ' L' + (x + STEP.w / 2) + ' ' + (COMP.y - 6), 'marker-end': 'url(#saga-arrow)' }, edges);

      // the step: a service, a button for the keyboard
      var g = svg('g', { class: 'node step-node', 'data-role': 'service', 'data-service': d.service, 'data-status': 'idle', 'data-alive': 'true', 'data-state': 'up', 'aria-label': d.service, transform: 'translate(' + x + ' ' + STEP.y + ')' }, self.layers.nodes);
      svg('rect', { class: 'node-focus-rect', x: -8, y: -8, width: STEP.w + 16, height: STEP.h + 16, rx: 16 }, g);
      svg('rect', { class: 'step-body', width: STEP.w, height: STEP.h, rx: 12, 'data-menu-anchor': '' }, g);
      svg('text', { class: 'step-num', x: 14, y: 28 }, g).textContent = String(i + 1);
      var name = svg('text', { class: 'step-service', x: STEP.w / 2 + 8, y: 34, 'text-anchor': 'middle' }, g);
      name.textContent = d.service;
      svg('text', { class: 'step-action', x: STEP.w / 2, y: 64, 'text-anchor': 'middle' }, g).textContent = d.action;
      var status = svg('text', { class: 'step-status', x: STEP.w / 2, y: 92, 'text-anchor': 'middle' }, g);
      var badge = svg('g', { class: 'step-badge', transform: 'translate(' + (STEP.w - 6) + ' 6)' }, g);
      svg('circle', { r: 20 }, badge);
      var badgeText = svg('text', { y: 8, 'text-anchor': 'middle' }, badge);
      var fail = svg('g', { class: 'step-fail-flag', transform: 'translate(' + (STEP.w / 2) + ' ' + (-18) + ')' }, g);
      svg('rect', { x: -74, y: -16, width: 148, height: 30, rx: 15 }, fail);
      var failText = svg('text', { y: 6, 'text-anchor': 'middle' }, fail);
      var k = 26;
      svg('path', { class: 'node-down-mark', d: 'M' + (STEP.w / 2 - k) + ' ' + (STEP.h / 2 - k) + ' l' + 2 * k + ' ' + 2 * k + ' m0 ' + (-2 * k) + ' l' + (-2 * k) + ' ' + 2 * k }, g);
      self.lab.bindNode(g, d.service);

      var c = svg('g', { class: 'comp-node', 'data-comp': d.service, 'data-status': 'idle', transform: 'translate(' + x + ' ' + COMP.y + ')' }, frame);
      svg('rect', { class: 'comp-body', width: STEP.w, height: COMP.h, rx: 12 }, c);
      svg('text', { class: 'comp-action', x: STEP.w / 2, y: 34, 'text-anchor': 'middle' }, c).textContent = '↩ ' + (d.compensation || 'nothing to undo');
      var compStatusText = svg('text', { class: 'comp-status', x: STEP.w / 2, y: 62, 'text-anchor': 'middle' }, c);
      var order = svg('g', { class: 'comp-order', transform: 'translate(' + (STEP.w - 6) + ' 6)' }, c);
      svg('circle', { r: 18 }, order);
      var orderText = svg('text', { y: 7, 'text-anchor': 'middle' }, order);

      self.steps[i] = Object.assign(self.steps[i] || {}, {
        service: d.service, g: g, status: status, badge: badge, badgeText: badgeText, fail: fail, failText: failText,
        undo: undo, comp: c, compStatus: compStatusText, order: order, orderText: orderText,
      });
    });

    // the orchestrator and the bus: nodes too (crash them)
    var og = svg('g', { class: 'node orch-node', 'data-role': 'orchestrator', 'data-alive': 'true', 'data-state': 'up', 'aria-label': 'orchestrator', transform: 'translate(' + ORCH.x + ' ' + ORCH.y + ')' }, this.layers.nodes);
    svg('rect', { class: 'node-focus-rect', x: -8, y: -8, width: ORCH.w + 16, height: ORCH.h + 16, rx: 16 }, og);
    svg('rect', { class: 'orch-body', width: ORCH.w, height: ORCH.h, rx: 12, 'data-menu-anchor': '' }, og);
    svg('text', { class: 'orch-name', x: ORCH.w / 2, y: 30, 'text-anchor': 'middle' }, og).textContent = 'orchestrator';
    var ologText = svg('text', { class: 'orch-log', x: ORCH.w / 2, y: 56, 'text-anchor': 'middle' }, og);
    svg('path', { class: 'node-down-mark', d: 'M' + (ORCH.w / 2 - 22) + ' 13 l44 44 m0 -44 l-44 44' }, og);
    this.lab.bindNode(og, 'orchestrator');
    this.orch = { g: og, log: ologText };

    var bg = svg('g', { class: 'node bus-node', 'data-role': 'bus', 'data-alive': 'true', 'data-state': 'up', 'aria-label': 'event bus', transform: 'translate(' + BUS.x + ' ' + BUS.y + ')' }, this.layers.nodes);
    svg('rect', { class: 'node-focus-rect', x: -8, y: -8, width: BUS.w + 16, height: BUS.h + 16, rx: 16 }, bg);
    svg('rect', { class: 'bus-body', width: BUS.w, height: BUS.h, rx: 24, 'data-menu-anchor': '' }, bg);
    var busText = svg('text', { class: 'bus-name', x: BUS.w / 2, y: 32, 'text-anchor': 'middle' }, bg);
    busText.textContent = 'event bus';
    this.lab.bindNode(bg, 'bus');
    this.bus = { g: bg, text: busText };
    return true;
  };

  /** Overlay one saga (or none) on the definition graph. */
  Drawing.prototype.overlay = function (view, saga) {
    var self = this;
    var steps = (saga && saga.steps) || [];
    var byService = {};
    steps.forEach(function (s) { byService[s.service] = s; });
    // compensations are numbered in the order they ran: the saga undoes in reverse, so the last done step first
    var undone = [];
    this.steps.forEach(function (st, i) {
      var s = byService[st.service];
      if (s && compStatus(s) !== 'idle') undone.push(i);
    });
    undone.sort(function (a, b) { return b - a; });
    var failures = failuresOf(view);
    this.steps.forEach(function (st, i) {
      var s = byService[st.service];
      var fs = s ? forwardStatus(s) : 'idle';
      var cs = s ? compStatus(s) : 'idle';
      var shown = cs === 'done' ? 'compensated' : cs === 'running' ? 'compensating' : fs;
      setAttr(st.g, 'data-status', shown);
      setAttr(st.comp, 'data-status', cs);
      setText(st.status, saga ? STATUS_WORD[shown] || shown : '');
      setText(st.badgeText, shown === 'done' ? '✓' : shown === 'failed' ? '✗' : shown === 'running' ? '…' : shown === 'compensated' || shown === 'compensating' ? '↩' : '');
      st.badge.style.display = saga && shown !== 'idle' && shown !== 'skipped' ? '' : 'none';
      setText(st.compStatus, cs === 'done' ? 'undone' : cs === 'running' ? 'undoing…' : '');
      var n = undone.indexOf(i);
      st.order.style.display = n >= 0 ? '' : 'none';
      setText(st.orderText, n >= 0 ? String(n + 1) : '');
      // edges: lit where the saga went
      var next = i < self.steps.length - 1 ? byService[self.steps[i + 1].service] : null;
      if (st.fwdEdge) {
        var went = fs !== 'idle' && next && forwardStatus(next) !== 'idle';
        st.fwdEdge.classList.toggle('is-lit', !!went);
        setAttr(st.fwdEdge, 'marker-end', went ? 'url(#saga-arrow-lit)' : 'url(#saga-arrow)');
      }
      if (st.backEdge) {
        var back = next && compStatus(next) !== 'idle' && cs !== 'idle';
        // or the failed step handed over to this one's compensation
        if (!back && next && forwardStatus(next) === 'failed' && cs !== 'idle') back = true;
        st.backEdge.classList.toggle('is-lit', !!back);
        setAttr(st.backEdge, 'marker-end', back ? 'url(#saga-arrow-undo)' : 'url(#saga-arrow)');
      }
      var undoLit = cs !== 'idle';
      st.undo.classList.toggle('is-lit', undoLit);
      setAttr(st.undo, 'marker-end', undoLit ? 'url(#saga-arrow-undo)' : 'url(#saga-arrow)');
      var f = failures[st.service];
      var fmode = f && (f.mode || f);
      var flagged = fmode && fmode !== 'off';
      st.fail.style.display = flagged ? '' : 'none';
      setText(st.failText, flagged ? (fmode === 'always' ? 'FAILS always' : fmode === 'once' ? 'FAILS once' : 'FAILS ' + Math.round(100 * (f.p || 0)) + '%') : '');
      setAttr(st.g, 'data-fail', flagged ? fmode : 'off');
    });
  };

  Drawing.prototype.update = function (view, saga) {
    var self = this;
    var services = {};
    (view.services || []).forEach(function (s) { services[s.id] = s; });
    this.overlay(view, saga);
    this.steps.forEach(function (st) {
      var s = services[st.service] || { alive: true };
      setAttr(st.g, 'data-alive', s.alive === false ? 'false' : 'true');
      setAttr(st.g, 'data-state', s.alive === false ? 'down' : 'up');
      var status = st.g.getAttribute('data-status');
      var fail = st.g.getAttribute('data-fail');
      setAttr(st.g, 'aria-label', st.service + ', service' + (s.alive === false ? ', DOWN' : '') +
        (saga ? ', in saga ' + saga.id + ': ' + (STATUS_WORD[status] || status) : '') + (fail !== 'off' ? ', set to fail ' + fail : ''));
    });
    var o = view.orchestrator || {};
    var orchestration = (view.mode || 'orchestration') === 'orchestration';
    setAttr(this.orch.g, 'data-alive', o.alive === false ? 'false' : 'true');
    setAttr(this.orch.g, 'data-state', o.alive === false ? 'down' : 'up');
    this.orch.g.classList.toggle('is-idle-mode', !orchestration);
    setText(this.orch.log, o.alive === false ? 'DOWN' : 'log ' + (o.log_length || 0) + ' · ' + (o.in_progress || 0) + ' running');
    setAttr(this.orch.g, 'aria-label', 'orchestrator, ' + (o.alive === false ? 'down' : 'up') + (orchestration ? '' : ', not used in choreography') + ', ' + (o.log_length || 0) + ' log entries, ' + (o.in_progress || 0) + ' sagas in progress');
    var bus = null;
    (view.services || []).forEach(function (s) { if (s.id === 'bus') bus = s; });
    var busAlive = !(bus && bus.alive === false) && !(view.bus && view.bus.alive === false);
    setAttr(this.bus.g, 'data-alive', busAlive ? 'true' : 'false');
    setAttr(this.bus.g, 'data-state', busAlive ? 'up' : 'down');
    this.bus.g.classList.toggle('is-idle-mode', orchestration);
    setText(this.bus.text, 'event bus' + (busAlive ? '' : ' (DOWN)') + (orchestration ? ' (not used in orchestration)' : ''));
    setAttr(this.bus.g, 'aria-label', 'event bus, ' + (busAlive ? 'up' : 'down') + (orchestration ? ', not used in orchestration' : ''));
  };

  function buildMessage(msg, g) {
    var t = String(msg.type || '');
    var compensating = /cancel|release|refund|compensat|undo/i.test(t) || msg.action === 'compensate';
    if (/ack|reply|event|publish|done|result|created|reserved|charged|scheduled|failed|declined/i.test(t)) {
      svg('path', { class: 'msg-shape saga-msg-event' + (compensating ? ' is-undo' : ''), d: 'M0 -11 L11 0 L0 11 L-11 0 Z' }, g);
      if (msg.ok != null) K.messageMark(g, !!msg.ok);
    } else {
      svg('circle', { class: 'msg-shape saga-msg-command' + (compensating ? ' is-undo' : ''), r: 9 }, g);
    }
  }

  // ------------------------------------------------------------------ panels
  function Panels(lab) {
    this.lab = lab;
    this.selected = '';
    var T = window.LabCharts.TimeSeries;
    var count = function (v) { return String(Math.round(v)); };
    this.sagasChart = new T($('chart-sagas'), {
      unit: '', yMaxAtLeast: 4, windowMs: 60000, integer: true, format: count, tickFormat: count,
      series: [
        { key: 'completed', label: 'completed', color: 2, dash: 0, value: function (r, d) { return colValue(d, ['completed', 'sagas_completed'], r.i); } },
        { key: 'compensated', label: 'compensated', color: 1, dash: 1, value: function (r, d) { return colValue(d, ['compensated', 'sagas_compensated'], r.i); } },
        { key: 'failed', label: 'failed', color: 7, dash: 2, value: function (r, d) { return colValue(d, ['failed'], r.i); } },
      ],
    });
    this.inflight = new T($('chart-inflight'), {
      unit: '', yMaxAtLeast: 4, windowMs: 60000, integer: true, format: count, tickFormat: count,
      series: [
        { key: 'in_progress', label: 'in progress', color: 0, dash: 0, value: function (r, d) { return colValue(d, ['in_progress', 'running', 'in_flight'], r.i); } },
      ],
    });
  }

  function colValue(d, names, i) {
    if (!d) return null;
    for (var k = 0; k < names.length; k++) if (Array.isArray(d[names[k]])) return d[names[k]][i];
    var counts = d.saga_counts || d.counts;
    if (counts) for (k = 0; k < names.length; k++) if (Array.isArray(counts[names[k]])) return counts[names[k]][i];
    return null;
  }

  /** The saga the drawing shows: the picked one, or the latest. */
  Panels.prototype.focus = function (view) {
    var sagas = sortedSagas(view);
    if (this.selected) {
      for (var i = 0; i < sagas.length; i++) if (String(sagas[i].id) === this.selected) return sagas[i];
    }
    return sagas.length ? sagas[sagas.length - 1] : null;
  };

  Panels.prototype.render = function (frame, view, saga) {
    setText($('mode-value'), view.mode || '–');
    this.renderStats(view);
    this.renderFocus(view, saga);
    this.renderSagas(view, saga);
    this.renderControls(view);
    this.renderOrchestrator(view);
    this.renderLedger(view);
    this.renderServices(view);
    var data = view.series || {};
    var markers = this.lab.markers;
    [this.sagasChart, this.inflight].forEach(function (c) { c.setMarkers(markers); c.update(data); });
  };

  function tile(id, value, level) {
    var el = $(id);
    setText(el.querySelector('.stat-value'), value);
    setAttr(el, 'data-level', level || '');
  }

  function counts(view) {
    var c = view.saga_counts || {};
    var sagas = view.sagas || [];
    var out = { completed: 0, compensated: 0, running: 0, stuck: 0 };
    if (Object.keys(c).length) {
      out.completed = c.completed || 0;
      out.compensated = c.compensated || 0;
      out.running = (c.running || 0) + (c.in_progress || 0) + (c.compensating || 0);
      out.stuck = (c.failed || 0) + (c.stuck || 0) + (c.aborted || 0);
      return out;
    }
    sagas.forEach(function (s) {
      var st = sagaStatus(s);
      if (st === 'completed') out.completed++;
      else if (st === 'compensated') out.compensated++;
      else if (isEnded(s)) out.stuck++;
      else out.running++;
    });
    return out;
  }

  function ledgerOk(view) {
    var l = view.ledger;
    if (l && typeof l === 'object') {
      if (l.ok != null) return !!l.ok;
      if (l.balanced != null) return !!l.balanced;
      if (l.conserved != null) return !!l.conserved;
    }
    var inv = (view.invariants || []).filter(function (i) { return /ledger|conserv|money|stock/i.test(i.id + ' ' + (i.title || '')); });
    if (inv.length) return inv.every(function (i) { return i.ok; });
    return null;
  }

  Panels.prototype.renderStats = function (view) {
    var c = counts(view);
    tile('stat-completed', String(c.completed), '');
    tile('stat-compensated', String(c.compensated), c.compensated ? 'warn' : '');
    tile('stat-running', String(c.running), '');
    tile('stat-stuck', String(c.stuck), c.stuck ? 'bad' : '');
    var ok = ledgerOk(view);
    tile('stat-ledger', ok == null ? '–' : ok ? 'balanced' : 'OFF', ok === false ? 'bad' : '');
    setAttr($('saga-stats'), 'data-completed', c.completed);
    setAttr($('saga-stats'), 'data-compensated', c.compensated);
  };

  Panels.prototype.renderFocus = function (view, saga) {
    var box = $('saga-focus');
    if (!saga) {
      setText(box, 'No saga yet: place an order.');
      setAttr(box, 'data-saga', '');
      setAttr(box, 'data-status', '');
      return;
    }
    var st = sagaStatus(saga);
    var parts = (saga.steps || []).map(function (s) {
      var cs = compStatus(s), fs = forwardStatus(s);
      var shown = cs === 'done' ? 'compensated' : cs === 'running' ? 'compensating' : fs;
      return s.service + ' ' + (STATUS_WORD[shown] || shown);
    });
    var text = 'Saga ' + saga.id + (this.selected ? '' : ' (the latest)') + (saga.order ? ', ' + orderText(saga.order) : '') + ', is ' + st + ' (' + (saga.mode || view.mode || '') + '): ' + parts.join(', ') + '.';
    if (st === 'compensated') {
      var undone = (saga.steps || []).map(function (s, i) { return { s: s, i: i }; }).filter(function (x) { return compStatus(x.s) === 'done'; })
        .sort(function (a, b) { return b.i - a.i; }).map(function (x) { return x.s.service; });
      if (undone.length) text += ' Undone in reverse: ' + undone.join(' → ') + '.';
    }
    setText(box, text);
    setAttr(box, 'data-saga', saga.id);
    setAttr(box, 'data-status', st);
  };

  function stepGlyph(s) {
    var cs = compStatus(s), fs = forwardStatus(s);
    if (cs === 'done') return '↩';
    if (cs === 'running') return '⟲';
    return fs === 'done' ? '✓' : fs === 'failed' ? '✗' : fs === 'running' ? '…' : '·';
  }

  Panels.prototype.renderSagas = function (view, focused) {
    var sagas = sortedSagas(view);
    var self = this;
    var key = JSON.stringify([sagas.map(function (s) { return [s.id, s.status, (s.steps || []).map(stepGlyph).join('')]; }), focused && focused.id, this.selected]);
    if (!this.lab.changed('sagas', key)) return;
    var rows = document.createDocumentFragment();
    var recent = sagas.slice(-15).reverse();
    if (!recent.length) {
      var empty = html('tr', { class: 'history-empty' });
      empty.appendChild(html('td', { colspan: 5 }, 'No sagas yet.'));
      rows.appendChild(empty);
    }
    recent.forEach(function (s) {
      var st = sagaStatus(s);
      var cls = st === 'completed' ? 'op-ok' : st === 'compensated' ? 'op-comp' : isEnded(s) ? 'op-fail' : 'op-pending';
      var tr = html('tr', { class: 'op saga-row ' + cls, 'data-saga': s.id, 'data-status': st });
      if (focused && String(focused.id) === String(s.id)) tr.classList.add('is-shown');
      var what = html('td', { class: 'op-what' });
      what.appendChild(html('span', { class: 'saga-id' }, String(s.id)));
      what.appendChild(html('span', { class: 'saga-order' }, (s.order ? orderText(s.order) + ' · ' : '') + (s.mode || '')));
      tr.appendChild(what);
      var steps = html('td', { class: 'saga-steps' });
      (s.steps || []).forEach(function (step) {
        var g = stepGlyph(step);
        var span = html('span', { class: 'saga-step-glyph', 'data-glyph': g, title: step.service + ': ' + step.status }, step.service.slice(0, 3) + ' ' + g);
        span.appendChild(html('span', { class: 'visually-hidden' }, ' (' + step.service + ' ' + step.status + ')'));
        steps.appendChild(span);
      });
      tr.appendChild(steps);
      tr.appendChild(html('td', { class: 'op-status' }, st));
      tr.appendChild(html('td', { class: 'num' }, s.ended_ms != null && s.started_ms != null ? U.fmtMs(s.ended_ms - s.started_ms) : '…'));
      var td = html('td');
      var shown = self.selected === String(s.id);
      var b = html('button', { type: 'button', class: 'small', 'data-show-saga': s.id, 'aria-pressed': shown ? 'true' : 'false' }, 'Show');
      b.setAttribute('aria-label', 'Show saga ' + s.id + ' on the drawing');
      td.appendChild(b);
      tr.appendChild(td);
      rows.appendChild(tr);
    });
    var tbody = $('sagas').tBodies[0];
    var hadFocus = tbody.contains(document.activeElement) ? document.activeElement.getAttribute('data-show-saga') : null;
    tbody.replaceChildren(rows);
    if (hadFocus) {
      var again = tbody.querySelector('[data-show-saga="' + CSS.escape(hadFocus) + '"]');
      if (again) again.focus();
    }
    // the picker
    var select = $('saga-select');
    var ids = recent.map(function (s) { return String(s.id); });
    if (this.selected && ids.indexOf(this.selected) < 0) ids.push(this.selected);
    if (document.activeElement !== select) {
      var options = [html('option', { value: '' }, 'the latest')].concat(ids.map(function (id) {
        var s = sagas.filter(function (x) { return String(x.id) === id; })[0];
        return html('option', { value: id }, 'saga ' + id + (s ? ' (' + sagaStatus(s) + ')' : ''));
      }));
      select.replaceChildren.apply(select, options);
      select.value = this.selected;
    }
  };

  Panels.prototype.renderControls = function (view) {
    var lab = this.lab;
    var rate = view.traffic && view.traffic.rate_rps;
    if (rate == null && view.params) rate = view.params.rate_rps;
    if (rate != null && !lab.touching('traffic-rate') && !lab.dirty.traffic) {
      var slider = $('traffic-rate');
      if (String(rate) !== slider.value) slider.value = String(rate);
      showRate(rate);
    }
    if (!lab.dirty.mode) {
      var radio = $('mode-' + (view.mode || 'orchestration'));
      if (radio && !radio.checked) radio.checked = true;
    }
    var ids = (view.services || []).map(function (s) { return s.id; }).filter(function (id) { return id !== 'bus' && id !== 'orchestrator'; });
    if (!ids.length) ids = definition(view).map(function (d) { return d.service; });
    if (lab.changed('fail-select', ids)) U.fillSelect($('fail-service'), ids);
    var failures = failuresOf(view);
    var set = Object.keys(failures).filter(function (k) { var f = failures[k]; var m = f && (f.mode || f); return m && m !== 'off'; });
    setText($('fail-state'), set.length ? 'Set to fail: ' + set.map(function (k) { var f = failures[k]; var m = f.mode || f; return k + ' (' + (m === 'p' ? Math.round(100 * (f.p || 0)) + '% of the time' : m) + ')'; }).join(', ') + '.' : 'No failures set: every step succeeds.');
    var net = view.network || {};
    if (!lab.touching('dup-rate') && !lab.dirty.dup) showPct('dup-rate', Math.round(100 * (net.duplicate_rate || 0)), true);
    if (!lab.touching('reorder-rate') && !lab.dirty.reorder) showPct('reorder-rate', Math.round(100 * (net.reorder_rate || 0)), true);
  };

  function showRate(rate) {
    setText($('traffic-rate-label'), rate + '/s');
    setAttr($('traffic-rate'), 'aria-valuetext', rate + ' orders per second');
  }

  function showPct(id, pct, setValue) {
    if (setValue && $(id).value !== String(pct)) $(id).value = String(pct);
    setText($(id + '-label'), pct + '%');
    setAttr($(id), 'aria-valuetext', pct + '%');
  }

  Panels.prototype.renderOrchestrator = function (view) {
    var o = view.orchestrator || {};
    var orchestration = (view.mode || 'orchestration') === 'orchestration';
    setText($('orch-state'), (o.alive === false ? 'DOWN. ' : 'Up. ') + 'Its durable log holds ' + (o.log_length || 0) + ' entries; ' +
      (o.in_progress || 0) + ' sagas in progress.' + (orchestration ? ' It tells each service what to do next and, after a failure, what to undo.' :
        ' In choreography nobody coordinates: each service reacts to the previous one\'s event on the bus.'));
    setAttr($('orch-state'), 'data-alive', o.alive === false ? 'false' : 'true');
    var tail = o.log_tail || [];
    if (this.lab.changed('orch-log', [o.log_length, tail.length])) {
      var items = tail.slice(-10).map(function (e) {
        var bits = [e.what, 'saga ' + e.saga];
        if (e.phase) bits.push(e.phase);
        if (e.step != null) bits.push('step ' + (e.step + 1) + (definition(view)[e.step] ? ' (' + definition(view)[e.step].service + ')' : ''));
        if (e.status) bits.push(e.status);
        if (e.order) bits.push(orderText(e.order));
        return html('li', { 'data-what': e.what }, bits.join(' · '));
      });
      if (!items.length) items = [html('li', { class: 'muted' }, 'empty')];
      var shownFrom = Math.max(1, (o.log_length || 0) - Math.min(10, tail.length) + 1);
      $('orch-log').setAttribute('start', String(shownFrom));
      $('orch-log').replaceChildren.apply($('orch-log'), items);
    }
  };

  Panels.prototype.renderLedger = function (view) {
    var l = view.ledger;
    var ok = ledgerOk(view);
    var check = $('ledger-check');
    setText(check, ok == null ? '–' : ok ? '✓ Conserved: every unit taken is either kept by a completed order or given back.' : '✗ NOT conserved: something was taken and never given back (or given back twice).');
    setAttr(check, 'data-ok', ok == null ? '' : ok ? 'true' : 'false');
    if (!this.lab.changed('ledger', l || null)) return;
    var dl = $('ledger');
    var items = [];
    if (l && typeof l === 'object') {
      Object.keys(l).forEach(function (k) {
        if (k === 'ok' || k === 'balanced' || k === 'conserved') return;
        var v = l[k];
        if (v && typeof v === 'object' && !Array.isArray(v)) {
          var head = html('div', { class: 'ledger-head', 'data-key': k });
          head.appendChild(html('dt', null, human(k)));
          head.appendChild(html('dd', null, ''));
          items.push(head);
          Object.keys(v).forEach(function (kk) {
            var div = html('div', { class: 'ledger-item', 'data-key': k + '.' + kk });
            div.appendChild(html('dt', null, human(kk)));
            div.appendChild(html('dd', null, fmtValue(v[kk])));
            items.push(div);
          });
          return;
        }
        var one = html('div', { class: 'ledger-item', 'data-key': k });
        one.appendChild(html('dt', null, human(k)));
        one.appendChild(html('dd', null, fmtValue(v)));
        items.push(one);
      });
    }
    dl.replaceChildren.apply(dl, items);
  };

  Panels.prototype.renderServices = function (view) {
    var services = view.services || [];
    if (!this.lab.changed('services', services)) return;
    var box = $('services');
    var cards = services.map(function (s) {
      var card = html('section', { class: 'service-card', 'data-service': s.id, 'data-alive': s.alive === false ? 'false' : 'true' });
      var h = html('h3', { class: 'service-name' }, s.id);
      if (s.alive === false) h.appendChild(html('span', { class: 'service-down' }, ' DOWN'));
      card.appendChild(h);
      var dl = html('dl', { class: 'service-state' });
      var st = s.state || {};
      Object.keys(st).forEach(function (k) {
        var div = html('div');
        div.appendChild(html('dt', null, human(k)));
        div.appendChild(html('dd', null, fmtValue(st[k])));
        dl.appendChild(div);
      });
      if (!Object.keys(st).length) dl.appendChild(html('div', null, 'nothing yet'));
      card.appendChild(dl);
      return card;
    });
    box.replaceChildren.apply(box, cards);
  };

  function summary(view, saga) {
    var c = counts(view);
    return 'Saga with ' + definition(view).map(function (d) { return d.service + ' (' + d.action + ', undo: ' + d.compensation + ')'; }).join(', then ') +
      '. ' + c.completed + ' completed, ' + c.compensated + ' compensated, ' + c.running + ' in progress.' +
      (saga ? ' Shown: saga ' + saga.id + ', ' + sagaStatus(saga) + '.' : '');
  }

  // ---------------------------------------------------------------- controls
  function wire(lab, panels) {
    $('order-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var qty = lab.intField('order-qty', 1, 100, 'The quantity must be a whole number from 1 to 100.');
      if (qty == null) return;
      var amount = lab.intField('order-amount', 1, 100000, 'The amount must be a whole number of dollars from 1 to 100000.');
      if (amount == null) return;
      lab.command({ op: 'place_order', customer: $('order-customer').value, item: $('order-item').value, qty: qty, amount: amount });
    });

    var rate = $('traffic-rate');
    rate.addEventListener('input', function () {
      lab.touched['traffic-rate'] = Date.now();
      lab.dirty.traffic = true;
      showRate(parseFloat(rate.value));
    });
    rate.addEventListener('change', function () {
      lab.touched['traffic-rate'] = Date.now();
      lab.command({ op: 'traffic', rate_rps: parseFloat(rate.value) || 0 }).then(function () { lab.dirty.traffic = false; });
    });

    Array.prototype.forEach.call(document.querySelectorAll('input[name=saga-mode]'), function (radio) {
      radio.addEventListener('change', function () {
        if (!radio.checked) return;
        lab.dirty.mode = true;
        lab.command({ op: 'mode', mode: radio.value }).then(function () { lab.dirty.mode = false; });
      });
    });

    $('fail-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var mode = $('fail-mode').value;
      var cmd = { op: 'fail', service: $('fail-service').value, mode: mode };
      if (mode === 'p') {
        var p = parseFloat($('fail-p').value);
        if (!isFinite(p) || p < 0 || p > 100) { lab.showError('The probability must be 0 to 100%.'); $('fail-p').focus(); return; }
        cmd.p = p / 100;
      }
      lab.command(cmd);
    });

    $('saga-select').addEventListener('change', function () {
      panels.selected = $('saga-select').value;
      lab.keys.sagas = null;
      if (lab.model.frame) lab.onFrame(lab.model.frame);
    });
    $('sagas').addEventListener('click', function (event) {
      var b = event.target.closest('button[data-show-saga]');
      if (!b) return;
      var id = b.getAttribute('data-show-saga');
      panels.selected = panels.selected === id ? '' : id;
      lab.keys.sagas = null;
      if (lab.model.frame) lab.onFrame(lab.model.frame);
    });

    [['dup-rate', 'dup', 'duplicate_rate'], ['reorder-rate', 'reorder', 'reorder_rate']].forEach(function (spec) {
      var el = $(spec[0]);
      el.addEventListener('input', function () {
        lab.touched[spec[0]] = Date.now();
        lab.dirty[spec[1]] = true;
        showPct(spec[0], parseInt(el.value, 10), false);
      });
      el.addEventListener('change', function () {
        lab.touched[spec[0]] = Date.now();
        var cmd = { op: 'network' };
        cmd[spec[2]] = (parseInt(el.value, 10) || 0) / 100;
        lab.command(cmd).then(function () { lab.dirty[spec[1]] = false; });
      });
    });
  }

  function nodeMenu(id, lab) {
    var view = lab.model.view || {};
    if (id === 'orchestrator') {
      var o = view.orchestrator || {};
      var alive = o.alive !== false;
      return {
        title: 'orchestrator, ' + (alive ? 'up' : 'DOWN'),
        facts: (o.log_length || 0) + ' log entries · ' + (o.in_progress || 0) + ' sagas in progress',
        actions: [
          { action: 'crash', label: 'Crash the orchestrator', disabled: !alive, cmd: { op: 'crash', node: 'orchestrator' } },
          { action: 'restart', label: 'Restart the orchestrator', disabled: alive, cmd: { op: 'restart', node: 'orchestrator' } },
        ],
      };
    }
    var s = lab.model.node(id, 'services') || { id: id, alive: true };
    var up = s.alive !== false;
    var failures = failuresOf(view);
    var f = failures[id];
    var mode = f ? (f.mode || f) : 'off';
    if (id === 'bus') {
      return {
        title: 'event bus, ' + (up ? 'up' : 'DOWN'),
        facts: '',
        actions: [
          { action: 'crash', label: 'Crash the bus', disabled: !up, cmd: { op: 'crash', node: 'bus' } },
          { action: 'restart', label: 'Restart the bus', disabled: up, cmd: { op: 'restart', node: 'bus' } },
        ],
      };
    }
    return {
      title: id + ': service, ' + (up ? 'up' : 'DOWN') + (mode !== 'off' ? ', fails ' + mode : ''),
      facts: fmtValue(s.state || {}),
      actions: [
        { action: 'fail-always', label: 'Make ' + id + ' fail every time', disabled: mode === 'always', cmd: { op: 'fail', service: id, mode: 'always' } },
        { action: 'fail-once', label: 'Make ' + id + ' fail once', cmd: { op: 'fail', service: id, mode: 'once' } },
        { action: 'fail-off', label: 'Stop ' + id + ' failing', disabled: mode === 'off', cmd: { op: 'fail', service: id, mode: 'off' } },
        { action: 'crash', label: 'Crash ' + id, disabled: !up, cmd: { op: 'crash', node: id } },
        { action: 'restart', label: 'Restart ' + id, disabled: up, cmd: { op: 'restart', node: id } },
      ],
    };
  }

  // ------------------------------------------------------------------- start
  var drawing = null, panels = null;
  K.start({
    name: 'sagaLab',
    init: function (lab) {
      drawing = new Drawing(lab);
      panels = new Panels(lab);
      wire(lab, panels);
    },
    frame: function (frame, view, ctx) {
      if (ctx.newEpoch) { drawing.messages.clear(); panels.selected = ''; }
      if (drawing.layout(view)) ctx.lab.closeMenu(false);
      var saga = panels.focus(view);
      drawing.update(view, saga);
      drawing.messages.sync(view.messages);
      panels.render(frame, view, saga);
      setText($('ring-summary'), summary(view, saga));
    },
    tick: function (now) {
      drawing.messages.draw(now);
    },
    menu: nodeMenu,
    marker: function (e) {
      if (/compensated/i.test(e.text || '') && /saga/i.test(e.text || '')) return U.shortLabel(e.text);
      if (e.kind === 'fault' || e.kind === 'config') return U.shortLabel(e.text);
      return null;
    },
    partitionIds: function (view) {
      return (view.services || []).map(function (s) { return s.id; }).concat(['orchestrator']).filter(function (v, i, a) { return a.indexOf(v) === i; });
    },
  });
})();
