/* The circuit breaker lab page, on top of the lab kit.
 *
 * Draws clients -> the front service (one slot per worker, filled while busy)
 * -> the call pipeline (its stages, lit when on) -> the downstreams, each
 * behind its breaker (a disc: green closed, amber half-open, red open; an open
 * breaker cuts its line). Below: one state-machine card per breaker with the
 * current state lit and its transitions listed with their why; charts of
 * client vs downstream load (amplification), p99, errors and breaker state;
 * pipeline toggles, retry policy and tuning; faults per downstream.
 */
(function () {
  'use strict';

  var K = window.LabKit;
  var U = K.util;
  var $ = U.$, svg = U.svg, html = U.html, setAttr = U.setAttr, setText = U.setText;

  var CLIENTS = { x: 12, y: 190, w: 120, h: 180 };
  var FRONT = { x: 168, y: 150, w: 170, h: 260 };
  var PIPE = { x: 368, w: 222, top: 70, h: 54, gap: 14 };
  var BREAKER_X = 662;
  var DOWN = { x: 712, w: 280, top: 12, bottom: 548 };

  var STATES = ['closed', 'half_open', 'open'];
  var STATE_TEXT = { closed: 'closed', half_open: 'half-open', open: 'OPEN', disabled: 'disabled' };
  var POLICY = { none: 'no retries', fixed: 'fixed delay', exponential: 'exponential backoff', exponential_jitter: 'exponential backoff + jitter' };
  var STAGES = ['fallback', 'retry', 'breaker', 'bulkhead', 'timeout'];
  var STAGE_NAME = { fallback: 'Fallback', retry: 'Retry', breaker: 'Circuit breaker', bulkhead: 'Bulkhead', timeout: 'Timeout' };

  function num(v) { return typeof v === 'number' && isFinite(v) ? v : null; }
  function pick(obj, names) {
    if (!obj) return null;
    for (var i = 0; i < names.length; i++) if (obj[names[i]] != null) return obj[names[i]];
    return null;
  }
  function stateText(s) { return STATE_TEXT[s] || String(s || '–'); }
  function pct(v) { return v == null ? '–' : U.fmtPct(v, v > 0 && v < 0.1 ? 1 : 0); }
  function latencyText(l) {
    if (Array.isArray(l)) return l[0] === l[1] ? U.fmtMs(l[0]) : U.fmtMs(l[0]) + '–' + U.fmtMs(l[1]);
    return num(l) != null ? U.fmtMs(l) : '–';
  }

  /** Settings of the pipeline, wherever the engine keeps them. */
  function pipeline(view) { return view.pipeline || {}; }
  function stageOn(view, stage) {
    var p = pipeline(view);
    var en = p.enabled || p.stages || null;
    if (en && !Array.isArray(en) && en[stage] != null) return !!en[stage];
    if (Array.isArray(en)) return en.indexOf(stage) >= 0;
    var s = p[stage];
    if (s && typeof s === 'object' && s.enabled != null) return !!s.enabled;
    if (typeof s === 'boolean') return s;
    if (stage === 'timeout') return true;
    return false;
  }
  /** {policy, attempts, base, budget (a ratio of first attempts, or null when there is no budget)}. */
  function retrySettings(view) {
    var p = pipeline(view);
    var r = p.retry_settings || {};
    return {
      policy: r.policy || 'none',
      attempts: num(r.max_attempts),
      base: num(r.base_ms),
      budget: r.budget ? num(r.budget_ratio) : null,
    };
  }
  function breakerSettings(view) { return pipeline(view).breaker_settings || {}; }
  function bulkheadLimit(view) { return num(pipeline(view).bulkhead_limit); }
  function timeoutMs(view) {
    var p = pipeline(view);
    if (p.timeout && typeof p.timeout === 'object') return pick(p.timeout, ['ms', 'timeout_ms']);
    return pick(p, ['timeout_ms', 'timeout']);
  }
  function breakerOf(view, id) { return (view.breakers || {})[id] || null; }

  function stageText(view, stage) {
    if (stage === 'timeout') { var t = timeoutMs(view); return 'Timeout ' + (t != null ? U.fmtMs(t) : ''); }
    if (stage === 'retry') {
      var r = retrySettings(view);
      return 'Retry ' + (r.policy === 'none' ? 'none' : (r.attempts != null ? '×' + r.attempts + ' ' : '') + (r.policy === 'exponential_jitter' ? 'exp+jitter' : r.policy === 'exponential' ? 'exponential' : 'fixed'));
    }
    if (stage === 'bulkhead') { var m = bulkheadLimit(view); return 'Bulkhead' + (m != null ? ' ≤' + m : ''); }
    if (stage === 'fallback') return 'Fallback: ' + (pipeline(view).fallback_mode === 'cached' ? 'cached' : 'default');
    return STAGE_NAME[stage];
  }

  // ------------------------------------------------------------- the drawing
  function Drawing(lab) {
    this.lab = lab;
    this.svg = $('ring');
    this.layers = { frame: $('layer-frame'), links: $('layer-links'), pipe: $('layer-pipeline'), nodes: $('layer-nodes') };
    this.downs = new Map();
    this.downKey = '';
    this.frontKey = '';
    this.front = null;
    this.stages = {};
    var self = this;
    this.buildStatic();
    this.messages = new K.MessageLayer($('layer-messages'), {
      position: function (id) { return self.position(id); },
      build: buildMessage,
      lane: 6,
    });
  }

  Drawing.prototype.position = function (id) {
    var d = this.downs.get(id);
    if (d) return { x: d.x + 40, y: d.y + d.h / 2, hw: 40, hh: d.h / 2 };
    if (id === 'front' || id === 'service' || id === 'api') return { x: FRONT.x + FRONT.w / 2, y: FRONT.y + FRONT.h / 2, hw: FRONT.w / 2, hh: FRONT.h / 2 };
    return { x: CLIENTS.x + CLIENTS.w / 2, y: CLIENTS.y + CLIENTS.h / 2, hw: CLIENTS.w / 2, hh: CLIENTS.h / 2 };
  };

  Drawing.prototype.buildStatic = function () {
    var layer = this.layers.frame;
    svg('rect', { class: 'client-box', x: CLIENTS.x, y: CLIENTS.y, width: CLIENTS.w, height: CLIENTS.h, rx: 12 }, layer);
    svg('text', { class: 'client-box-label', x: CLIENTS.x + CLIENTS.w / 2, y: CLIENTS.y + 34, 'text-anchor': 'middle' }, layer).textContent = 'clients';
    this.clientRate = svg('text', { class: 'cb-rate', x: CLIENTS.x + CLIENTS.w / 2, y: CLIENTS.y + 100, 'text-anchor': 'middle' }, layer);
    svg('text', { class: 'cb-rate-unit', x: CLIENTS.x + CLIENTS.w / 2, y: CLIENTS.y + 126, 'text-anchor': 'middle' }, layer).textContent = 'req/s';
    svg('path', { class: 'cb-arrow', d: 'M' + (CLIENTS.x + CLIENTS.w + 4) + ' ' + (FRONT.y + FRONT.h / 2) + ' L' + (FRONT.x - 6) + ' ' + (FRONT.y + FRONT.h / 2) }, layer);
    // the pipeline: one box around the stages, in the order a call goes through them
    var ph = STAGES.length * (PIPE.h + PIPE.gap) - PIPE.gap;
    svg('rect', { class: 'pipe-box', x: PIPE.x - 12, y: PIPE.top - 40, width: PIPE.w + 24, height: ph + 54, rx: 14 }, layer);
    svg('text', { class: 'pipe-title', x: PIPE.x + PIPE.w / 2, y: PIPE.top - 14, 'text-anchor': 'middle' }, layer).textContent = 'call pipeline';
    svg('path', { class: 'cb-arrow', d: 'M' + (FRONT.x + FRONT.w + 4) + ' ' + (FRONT.y + FRONT.h / 2) + ' L' + (PIPE.x - 16) + ' ' + (FRONT.y + FRONT.h / 2) }, layer);
    var self = this;
    STAGES.forEach(function (stage, i) {
      var y = PIPE.top + i * (PIPE.h + PIPE.gap);
      var g = svg('g', { class: 'stage', 'data-stage': stage, 'data-on': 'false', transform: 'translate(' + PIPE.x + ' ' + y + ')' }, self.layers.pipe);
      svg('rect', { class: 'stage-body', width: PIPE.w, height: PIPE.h, rx: 10 }, g);
      var label = svg('text', { class: 'stage-label', x: PIPE.w / 2, y: 24, 'text-anchor': 'middle' }, g);
      var sub = svg('text', { class: 'stage-sub', x: PIPE.w / 2, y: 45, 'text-anchor': 'middle' }, g);
      if (i < STAGES.length - 1) svg('path', { class: 'stage-arrow', d: 'M' + (PIPE.w / 2) + ' ' + (PIPE.h + 2) + ' l0 ' + (PIPE.gap - 4) }, g);
      self.stages[stage] = { g: g, label: label, sub: sub };
    });
    this.frontG = null;
  };

  Drawing.prototype.layoutFront = function (view) {
    var f = view.front || {};
    var workers = Math.max(1, Math.min(64, f.workers || 1));
    if (String(workers) === this.frontKey) return;
    this.frontKey = String(workers);
    if (this.frontG) this.frontG.remove();
    var g = svg('g', { class: 'node front-node', 'data-role': 'front', 'data-alive': 'true', 'data-state': 'up', 'aria-label': 'front', transform: 'translate(' + FRONT.x + ' ' + FRONT.y + ')' }, this.layers.nodes);
    svg('rect', { class: 'node-focus-rect', x: -8, y: -8, width: FRONT.w + 16, height: FRONT.h + 16, rx: 16 }, g);
    svg('rect', { class: 'front-body', width: FRONT.w, height: FRONT.h, rx: 12, 'data-menu-anchor': '' }, g);
    svg('text', { class: 'front-name', x: FRONT.w / 2, y: 34, 'text-anchor': 'middle' }, g).textContent = 'front';
    var busy = svg('text', { class: 'front-busy', x: FRONT.w / 2, y: 60, 'text-anchor': 'middle' }, g);
    var cols = workers > 16 ? 8 : 4;
    var rows = Math.ceil(workers / cols);
    var sw = (FRONT.w - 24) / cols, sh = Math.min(30, (FRONT.h - 120) / rows);
    var slots = [];
    for (var i = 0; i < workers; i++) {
      slots.push(svg('rect', { class: 'slot', x: (12 + (i % cols) * sw + 2).toFixed(1), y: (76 + Math.floor(i / cols) * sh + 2).toFixed(1), width: (sw - 4).toFixed(1), height: (sh - 4).toFixed(1), rx: 3 }, g));
    }
    var queued = svg('text', { class: 'front-queued', x: FRONT.w / 2, y: FRONT.h - 16, 'text-anchor': 'middle' }, g);
    svg('path', { class: 'node-down-mark', d: 'M' + (FRONT.w / 2 - 26) + ' ' + (FRONT.h / 2 - 26) + ' l52 52 m0 -52 l-52 52' }, g);
    this.lab.bindNode(g, 'front');
    this.frontG = g;
    this.front = { g: g, busy: busy, slots: slots, queued: queued };
  };

  Drawing.prototype.layoutDownstreams = function (view) {
    var ids = (view.downstream || []).map(function (d) { return d.id; });
    var key = ids.join(',');
    if (key === this.downKey) return false;
    this.downKey = key;
    var self = this;
    this.downs.forEach(function (d) { d.g.remove(); d.link.remove(); });
    this.downs.clear();
    var n = Math.max(1, ids.length);
    var pitch = (DOWN.bottom - DOWN.top) / n;
    var h = Math.min(120, pitch - 14);
    ids.forEach(function (id, i) {
      var y = DOWN.top + pitch * i + (pitch - h) / 2;
      self.downs.set(id, self.buildDown(id, DOWN.x, y, h));
    });
    return true;
  };

  Drawing.prototype.buildDown = function (id, x, y, h) {
    var W = DOWN.w;
    var cy = y + h / 2;
    var sx = PIPE.x + PIPE.w + 12, sy = PIPE.top + 2 * (PIPE.h + PIPE.gap) + PIPE.h / 2; // out of the breaker stage
    var link = svg('g', { class: 'cb-link', 'data-link': id }, this.layers.links);
    var before = svg('path', { class: 'cb-line', d: 'M' + sx + ' ' + sy + ' C' + (sx + 40) + ' ' + sy + ' ' + (BREAKER_X - 60) + ' ' + cy + ' ' + (BREAKER_X - 24) + ' ' + cy }, link);
    var after = svg('path', { class: 'cb-line cb-line-after', d: 'M' + (BREAKER_X + 24) + ' ' + cy + ' L' + (x - 4) + ' ' + cy }, link);
    var g = svg('g', { class: 'node ds-node', 'data-role': 'downstream', 'data-alive': 'true', 'data-state': 'healthy', 'data-breaker': 'closed', 'aria-label': id }, this.layers.nodes);
    // the breaker disc in front of the downstream (part of its button: it is this downstream's breaker)
    var br = svg('g', { class: 'breaker-disc', transform: 'translate(' + BREAKER_X + ' ' + cy + ')' }, g);
    svg('circle', { class: 'breaker-body', r: 24 }, br);
    var brMark = svg('path', { class: 'breaker-mark', d: 'M-12 0 L12 0' }, br);
    var brText = svg('text', { class: 'breaker-label', y: 46, 'text-anchor': 'middle' }, br);
    var box = svg('g', { transform: 'translate(' + x + ' ' + y + ')' }, g);
    svg('rect', { class: 'node-focus-rect', x: -8, y: -8, width: W + 16, height: h + 16, rx: 16 }, box);
    svg('rect', { class: 'ds-body', width: W, height: h, rx: 10, 'data-menu-anchor': '' }, box);
    svg('rect', { class: 'be-stripe fill-c-' + U.nodeColour(id), width: 12, height: h, rx: 4 }, box);
    var dense = h < 70;
    var name = svg('text', { class: 'ds-name', x: 24, y: dense ? h / 2 + 9 : 34 }, box);
    name.textContent = id;
    var state = svg('text', { class: 'ds-state', x: dense ? 80 : 24, y: dense ? h / 2 + 7 : 62 }, box);
    var facts = svg('text', { class: 'ds-facts', x: dense ? W - 10 : 24, y: dense ? h / 2 + 7 : 88, 'text-anchor': dense ? 'end' : 'start' }, box);
    var inflight = svg('text', { class: 'ds-inflight', x: W - 10, y: 28, 'text-anchor': 'end' }, box);
    if (dense) inflight.style.display = 'none';
    var k = Math.min(22, h / 2 - 4);
    svg('path', { class: 'node-down-mark', d: 'M' + (W / 2 - k) + ' ' + (h / 2 - k) + ' l' + 2 * k + ' ' + 2 * k + ' m0 ' + (-2 * k) + ' l' + (-2 * k) + ' ' + 2 * k }, box);
    this.lab.bindNode(g, id);
    return { id: id, g: g, x: x, y: y, h: h, link: link, before: before, after: after, br: br, brMark: brMark, brText: brText, state: state, facts: facts, inflight: inflight };
  };

  function downState(d) {
    if (!d.alive) return 'down';
    if (d.gray) return 'gray';
    var lat = Array.isArray(d.latency_ms) ? d.latency_ms[1] : d.latency_ms;
    if (d.error_rate > 0 || d.hang_rate > 0) return 'failing';
    if (lat != null && lat > 200) return 'slow';
    return 'healthy';
  }

  Drawing.prototype.update = function (view) {
    var self = this;
    var f = view.front || {};
    if (this.front) {
      for (var i = 0; i < this.front.slots.length; i++) setAttr(this.front.slots[i], 'class', i < (f.busy || 0) ? 'slot slot-busy' : 'slot');
      setText(this.front.busy, (f.busy || 0) + '/' + (f.workers || 0) + ' workers busy');
      setText(this.front.queued, f.queued ? f.queued + ' queued' : 'no queue');
      setAttr(this.front.queued, 'class', f.queued ? 'front-queued has-queue' : 'front-queued');
      setAttr(this.front.g, 'data-busy', f.busy || 0);
      setAttr(this.front.g, 'data-alive', f.alive === false ? 'false' : 'true');
      setAttr(this.front.g, 'data-state', f.alive === false ? 'down' : 'up');
      setAttr(this.front.g, 'aria-label', 'front service, ' + (f.alive === false ? 'DOWN' : (f.busy || 0) + ' of ' + (f.workers || 0) + ' workers busy, ' + (f.queued || 0) + ' queued'));
      var full = f.workers && f.busy >= f.workers;
      this.front.g.classList.toggle('is-full', !!full);
    }
    var s = view.stats || {};
    setText(this.clientRate, s.client_rps != null ? String(Math.round(s.client_rps)) : '–');
    STAGES.forEach(function (stage) {
      var st = self.stages[stage];
      var on = stageOn(view, stage);
      setAttr(st.g, 'data-on', on ? 'true' : 'false');
      setText(st.label, stageText(view, stage));
      setText(st.sub, on ? 'on' : 'off');
    });
    var breakerOnAll = stageOn(view, 'breaker');
    (view.downstream || []).forEach(function (d) {
      var dd = self.downs.get(d.id);
      if (!dd) return;
      var b = breakerOf(view, d.id) || {};
      var bs = b.state || 'closed';
      var state = downState(d);
      setAttr(dd.g, 'data-alive', d.alive ? 'true' : 'false');
      setAttr(dd.g, 'data-state', state);
      setAttr(dd.g, 'data-breaker', bs);
      setAttr(dd.g, 'data-in-flight', d.in_flight || 0);
      setAttr(dd.link, 'data-breaker', bs);
      dd.g.classList.toggle('breaker-off', !breakerOnAll);
      setText(dd.brText, breakerOnAll ? stateText(bs) : 'no breaker');
      setAttr(dd.brMark, 'd', bs === 'open' ? 'M-12 -8 L12 8' : bs === 'half_open' ? 'M-12 0 L0 0 M4 -8 L12 -8' : 'M-12 0 L12 0');
      setText(dd.state, state === 'down' ? 'DOWN' : state === 'failing' ? (d.error_rate > 0 ? 'failing ' + pct(d.error_rate) : '') + (d.hang_rate > 0 ? (d.error_rate > 0 ? ', ' : '') + pct(d.hang_rate) + ' hang' : '') : state === 'gray' ? 'gray failure' : state === 'slow' ? 'slow' : 'healthy');
      setText(dd.facts, latencyText(d.latency_ms) + ' · ' + (d.received || 0) + ' calls');
      setText(dd.inflight, (d.in_flight || 0) + ' in flight');
      setAttr(dd.g, 'aria-label', d.id + ', downstream, ' + (state === 'down' ? 'down' : state === 'failing' ? dd.state.textContent : state) +
        ', latency ' + latencyText(d.latency_ms) + ', ' + (d.in_flight || 0) + ' in flight, breaker ' + (breakerOnAll ? stateText(bs) : 'off'));
    });
  };

  function buildMessage(msg, g) {
    var t = String(msg.type || '');
    if (/reply|response|result/i.test(t)) {
      svg('path', { class: 'msg-shape cb-msg-reply', d: 'M0 -11 L11 0 L0 11 L-11 0 Z' }, g);
      var ok = msg.ok != null ? msg.ok : msg.status != null ? (msg.status === 'ok' || msg.status === 200) : null;
      if (ok != null) K.messageMark(g, !!ok);
    } else if (/request|call/i.test(t)) {
      svg('circle', { class: 'msg-shape cb-msg-call' + (msg.attempt > 1 || msg.retry ? ' is-retry' : ''), r: 8 }, g);
    } else {
      svg('circle', { class: 'msg-shape msg-other', r: 6 }, g);
    }
  }

  // ------------------------------------------------------------- breaker cards
  var SM = { closed: { x: 90, y: 50 }, open: { x: 430, y: 50 }, half_open: { x: 260, y: 172 } };
  var ARROWS = [
    { from: 'closed', to: 'open', d: 'M148 44 L370 44', lx: 260, ly: 32, anchor: 'middle', label: 'too many failures' },
    { from: 'open', to: 'half_open', d: 'M418 80 L318 148', lx: 384, ly: 134, anchor: 'start', label: 'cool-down over' },
    { from: 'half_open', to: 'open', d: 'M296 142 L394 76', lx: 330, ly: 96, anchor: 'end', label: 'a probe fails' },
    { from: 'half_open', to: 'closed', d: 'M202 150 L112 80', lx: 138, ly: 140, anchor: 'end', label: 'probes succeed' },
    { from: 'open', to: 'closed', d: 'M372 64 Q260 100 148 64', lx: 260, ly: 104, anchor: 'middle', label: 'forced' },
  ];

  function BreakerCards(box) {
    this.box = box;
    this.cards = new Map();
    this.key = '';
  }

  BreakerCards.prototype.build = function (id) {
    var card = html('section', { class: 'breaker-card', 'data-breaker': id, 'data-state': 'closed', 'aria-labelledby': 'breaker-' + id + '-title' });
    var head = html('h3', { class: 'breaker-title', id: 'breaker-' + id + '-title' });
    head.appendChild(html('span', { class: 'breaker-name' }, id));
    head.appendChild(document.createTextNode(' '));
    var now = html('span', { class: 'breaker-now' });
    head.appendChild(now);
    card.appendChild(head);
    var sm = svg('svg', { class: 'breaker-sm', viewBox: '0 0 520 206', role: 'img', 'aria-label': 'State machine of ' + id + "'s breaker" }, card);
    var defs = svg('defs', null, sm);
    var marker = svg('marker', { id: 'sm-arrow-' + id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 14, markerHeight: 14, orient: 'auto-start-reverse' }, defs);
    svg('path', { d: 'M0 0 L10 5 L0 10 Z', class: 'sm-arrowhead' }, marker);
    var arrows = {};
    ARROWS.forEach(function (a) {
      var g = svg('g', { class: 'sm-edge', 'data-edge': a.from + '>' + a.to }, sm);
      svg('path', { class: 'sm-edge-line', d: a.d, 'marker-end': 'url(#sm-arrow-' + id + ')' }, g);
      svg('text', { class: 'sm-edge-label', x: a.lx, y: a.ly, 'text-anchor': a.anchor }, g).textContent = a.label;
      arrows[a.from + '>' + a.to] = g;
    });
    var states = {};
    STATES.forEach(function (s) {
      var p = SM[s];
      var g = svg('g', { class: 'sm-state br-' + s, 'data-sm-state': s, transform: 'translate(' + p.x + ' ' + p.y + ')' }, sm);
      svg('rect', { class: 'sm-body', x: -56, y: -26, width: 112, height: 52, rx: 26 }, g);
      svg('text', { class: 'sm-label', y: 7, 'text-anchor': 'middle' }, g).textContent = stateText(s).toLowerCase();
      states[s] = g;
    });
    var stats = html('p', { class: 'breaker-stats' });
    card.appendChild(stats);
    var why = html('p', { class: 'breaker-why' });
    card.appendChild(why);
    var list = html('ol', { class: 'breaker-transitions', reversed: '' });
    card.appendChild(list);
    return { card: card, now: now, states: states, arrows: arrows, stats: stats, why: why, list: list, trKey: '' };
  };

  BreakerCards.prototype.render = function (view) {
    var breakers = view.breakers || {};
    var ids = (view.downstream || []).map(function (d) { return d.id; }).filter(function (id) { return breakers[id]; });
    Object.keys(breakers).forEach(function (id) { if (ids.indexOf(id) < 0) ids.push(id); });
    var key = ids.join(',');
    var self = this;
    if (key !== this.key) {
      this.key = key;
      this.box.replaceChildren();
      this.cards.clear();
      ids.forEach(function (id) { var c = self.build(id); self.cards.set(id, c); self.box.appendChild(c.card); });
    }
    var on = stageOn(view, 'breaker');
    this.box.classList.toggle('is-off', !on);
    ids.forEach(function (id) {
      var b = breakers[id], c = self.cards.get(id);
      var st = b.state || 'closed';
      setAttr(c.card, 'data-state', st);
      setText(c.now, on ? stateText(st) : stateText(st) + ' (breaker stage off)');
      STATES.forEach(function (s) { c.states[s].classList.toggle('is-current', s === st); setAttr(c.states[s], 'aria-current', s === st ? 'true' : 'false'); });
      var tr = b.transitions || [];
      var last = tr[tr.length - 1];
      Object.keys(c.arrows).forEach(function (k) { c.arrows[k].classList.toggle('is-last', !!last && k === last.from + '>' + last.to); });
      setText(c.stats, 'failure rate ' + pct(b.failure_rate) + ' · slow ' + pct(b.slow_rate) + ' · ' + (b.calls_in_window || 0) + ' calls in the window');
      setText(c.why, last ? 'Why ' + stateText(last.to).toLowerCase() + ': ' + (last.why || '–') : 'No transitions yet: the breaker counts calls and waits.');
      var trKey = tr.length + ':' + (last ? last.at_ms : '');
      if (trKey !== c.trKey) {
        c.trKey = trKey;
        var items = tr.slice(-6).reverse().map(function (t) {
          var li = html('li', { class: 'breaker-transition', 'data-to': t.to });
          li.appendChild(html('span', { class: 'tr-time' }, U.fmtShortTime(t.at_ms)));
          li.appendChild(html('span', { class: 'tr-edge' }, stateText(t.from).toLowerCase() + ' → ' + stateText(t.to).toLowerCase()));
          li.appendChild(html('span', { class: 'tr-why' }, t.why || ''));
          return li;
        });
        if (!items.length) items = [html('li', { class: 'tr-empty' }, 'No transitions yet.')];
        c.list.replaceChildren.apply(c.list, items);
      }
    });
  };

  // ------------------------------------------------------------------ panels
  function col(d, name) { return d && Array.isArray(d[name]) ? d[name] : null; }

  /** The per-downstream breaker state column for `id`, as numbers (0 closed, 1 half-open, 2 open). */
  function breakerColumn(d, id) {
    var holders = [d && d.breaker_level, d && d.breaker_state];
    for (var i = 0; i < holders.length; i++) {
      var h = holders[i];
      if (h && !Array.isArray(h) && Array.isArray(h[id])) return h[id];
    }
    var flat = d && (d['breaker_' + id] || d[id + '_breaker']);
    return Array.isArray(flat) ? flat : null;
  }
  function stateNumber(v) {
    if (typeof v === 'number') return v;
    if (v === 'open') return 2;
    if (v === 'half_open') return 1;
    if (v === 'closed') return 0;
    return null;
  }

  function Panels(lab) {
    this.lab = lab;
    var T = window.LabCharts.TimeSeries;
    var rps = function (v) { return (Math.round(v * 10) / 10) + '/s'; };
    this.load = new T($('chart-load'), {
      unit: '/s', yMaxAtLeast: 10, windowMs: 30000, format: rps, tickFormat: function (v) { return String(v); },
      series: [
        { key: 'client', label: 'client requests', color: 0, dash: 0, value: function (r, d) { var c = col(d, 'client_rps'); return c ? c[r.i] : null; } },
        { key: 'downstream', label: 'downstream calls', color: 1, dash: 1, value: function (r, d) { var c = col(d, 'downstream_rps'); return c ? c[r.i] : null; } },
      ],
    });
    this.amp = new T($('chart-amp'), {
      unit: '×', yMaxAtLeast: 2, windowMs: 30000,
      format: function (v) { return (Math.round(v * 100) / 100) + '×'; }, tickFormat: function (v) { return v + '×'; },
      series: [{ key: 'amp', label: 'amplification', color: 1, dash: 0, value: function (r, d) { var c = col(d, 'amplification'); return c ? c[r.i] : null; } }],
    });
    this.latency = new T($('chart-latency'), {
      unit: 'ms', yMaxAtLeast: 50, windowMs: 30000, format: function (v) { return U.fmtMs(v); },
      tickFormat: function (v) { return v >= 1000 ? (v / 1000) + ' s' : v + ' ms'; },
      series: [{ key: 'p99', label: 'p99', color: 0, dash: 0, value: function (r, d) { var c = col(d, 'p99_ms'); return c ? c[r.i] : null; } }],
    });
    this.errors = new T($('chart-errors'), {
      unit: '%', yMaxAtLeast: 5, windowMs: 30000,
      format: function (v) { return (Math.round(v * 10) / 10) + '%'; }, tickFormat: function (v) { return v + '%'; },
      series: [{ key: 'errors', label: 'error rate', color: 1, dash: 0, value: function (r, d) { var c = col(d, 'error_rate'); return c ? 100 * c[r.i] : null; } }],
    });
    this.breakers = new T($('chart-breakers'), {
      unit: '', yMax: 2, windowMs: 30000, integer: true,
      format: function (v) { return v >= 1.5 ? 'open' : v >= 0.5 ? 'half-open' : 'closed'; },
      tickFormat: function (v) { return v === 2 ? 'open' : v === 1 ? 'half' : v === 0 ? 'closed' : ''; },
      series: [],
    });
    this.cards = new BreakerCards($('breakers'));
  }

  Panels.prototype.render = function (frame, view) {
    this.renderFacts(view);
    this.renderStats(view);
    this.renderCharts(view);
    this.cards.render(view);
    this.renderControls(view);
    this.renderTuning(view);
    this.renderFaultSelect(view);
  };

  Panels.prototype.renderFacts = function (view) {
    var on = STAGES.filter(function (s) { return s !== 'timeout' && stageOn(view, s); }).map(function (s) { return STAGE_NAME[s].toLowerCase(); });
    setText($('pipeline-value'), on.length ? 'timeout + ' + on.join(' + ') : 'timeout only');
    var r = retrySettings(view);
    setText($('retry-value'), stageOn(view, 'retry') ? (POLICY[r.policy] || r.policy) : 'off');
  };

  function tile(id, value, level) {
    var el = $(id);
    setText(el.querySelector('.stat-value'), value);
    setAttr(el, 'data-level', level || '');
  }

  Panels.prototype.renderStats = function (view) {
    var s = view.stats || {};
    var amp = num(s.amplification);
    tile('stat-client-rps', s.client_rps != null ? String(Math.round(s.client_rps)) : '–');
    tile('stat-downstream-rps', s.downstream_rps != null ? String(Math.round(s.downstream_rps)) : '–', amp > 2 ? 'bad' : amp > 1.3 ? 'warn' : '');
    tile('stat-amplification', amp != null ? (Math.round(amp * 100) / 100) + '×' : '–', amp > 2 ? 'bad' : amp > 1.3 ? 'warn' : '');
    var t = timeoutMs(view) || 1000;
    tile('stat-p99', U.fmtMs(s.p99_ms), s.p99_ms > t ? 'bad' : s.p99_ms > t / 2 ? 'warn' : '');
    tile('stat-short', String(s.short_circuited || 0));
    tile('stat-fallbacks', String(s.fallbacks || 0));
    tile('stat-bulkhead', String(s.bulkhead_rejected || 0), s.bulkhead_rejected ? 'warn' : '');
    setAttr($('cb-stats'), 'data-amplification', amp == null ? '' : amp);
  };

  Panels.prototype.renderCharts = function (view) {
    var data = view.series || {};
    var ids = (view.downstream || []).map(function (d) { return d.id; });
    this.breakers.setSeries(ids.map(function (id, i) {
      return {
        key: id, label: id, color: U.nodeColour(id), dash: i % 4,
        value: function (r, d) { var c = breakerColumn(d, id); return c ? stateNumber(c[r.i]) : null; },
      };
    }));
    var markers = this.lab.markers;
    [this.load, this.amp, this.latency, this.errors, this.breakers].forEach(function (chart) {
      chart.setMarkers(markers);
      chart.update(data);
    });
  };

  Panels.prototype.showRate = function (rate) {
    setText($('traffic-rate-label'), rate + ' req/s');
    setAttr($('traffic-rate'), 'aria-valuetext', rate + ' requests per second');
  };

  Panels.prototype.renderControls = function (view) {
    var lab = this.lab;
    var rate = pick(view.traffic || {}, ['rate_rps']);
    if (rate == null) rate = pick(pipeline(view), ['rate_rps']);
    if (rate == null && view.params) rate = view.params.rate_rps;
    if (rate != null && !lab.touching('traffic-rate') && !lab.dirty.traffic) {
      var slider = $('traffic-rate');
      if (String(Math.round(rate)) !== slider.value) slider.value = String(Math.round(rate));
      this.showRate(Math.round(rate));
    }
    if (!lab.dirty.stages) {
      ['retry', 'breaker', 'bulkhead', 'fallback'].forEach(function (s) {
        var box = $('stage-' + s);
        var on = stageOn(view, s);
        if (box.checked !== on) box.checked = on;
      });
    }
    if (!lab.dirty.policy) {
      var radio = $('policy-' + retrySettings(view).policy);
      if (radio && !radio.checked) radio.checked = true;
    }
  };

  function fill(id, value) {
    var el = $(id);
    if (value == null || document.activeElement === el) return;
    if (el.value !== String(value)) el.value = String(value);
  }

  Panels.prototype.renderTuning = function (view) {
    var r = retrySettings(view), b = breakerSettings(view);
    var thr = num(b.failure_rate_threshold); // percent
    var win = num(b.window_size);
    var cool = num(b.wait_open_ms);
    var probes = num(b.half_open_calls);
    var maxc = bulkheadLimit(view);
    var parts = ['Timeout ' + U.fmtMs(timeoutMs(view))];
    parts.push('retry ' + (stageOn(view, 'retry') ? (POLICY[r.policy] || r.policy) + (r.attempts != null ? ', up to ' + r.attempts + ' attempts' : '') +
      (r.budget != null ? ', budget ' + Math.round(r.budget * 100) + '% of first attempts' : ', no budget') : 'off'));
    parts.push('breaker ' + (stageOn(view, 'breaker') ? 'opens at ' + (thr != null ? thr + '%' : '?') + ' failures over the last ' + (win != null ? win : '?') + ' calls' +
      (b.minimum_calls ? ' (once it has ' + b.minimum_calls + ')' : '') + (cool != null ? ', stays open ' + U.fmtMs(cool) : '') : 'off'));
    parts.push('bulkhead ' + (stageOn(view, 'bulkhead') ? (maxc != null ? maxc + ' in flight per downstream' : 'on') : 'off'));
    parts.push('fallback ' + (stageOn(view, 'fallback') ? 'on (' + (pipeline(view).fallback_mode || 'default') + ' response)' : 'off'));
    setText($('pipeline-state'), parts.join('; ') + '.');
    if (this.lab.dirty.tuning) return;
    fill('timeout-ms', timeoutMs(view));
    fill('retry-attempts', r.attempts);
    fill('retry-base', r.base);
    fill('retry-budget', r.budget != null ? Math.round(r.budget * 100) : 0);
    fill('breaker-threshold', thr);
    fill('breaker-window', win);
    fill('breaker-cooldown', cool);
    fill('breaker-probes', probes);
    fill('bulkhead-max', maxc);
    fill('fallback-mode', pipeline(view).fallback_mode);
  };

  Panels.prototype.renderFaultSelect = function (view) {
    var ids = (view.downstream || []).map(function (d) { return d.id; });
    if (this.lab.changed('fault-select', ids)) U.fillSelect($('fault-node'), ids);
    var d = this.lab.model.node($('fault-node').value, 'downstream');
    if (d && !this.lab.dirty.fault) {
      var lat = Array.isArray(d.latency_ms) ? d.latency_ms : [d.latency_ms, d.latency_ms];
      fill('fault-lat-min', lat[0]);
      fill('fault-lat-max', lat[1]);
      fill('fault-error', Math.round(100 * (d.error_rate || 0)));
      fill('fault-hang', Math.round(100 * (d.hang_rate || 0)));
      if ($('fault-gray').checked !== !!d.gray) $('fault-gray').checked = !!d.gray;
    }
  };

  function summary(view) {
    var parts = [];
    var f = view.front || {};
    parts.push('front: ' + (f.busy || 0) + ' of ' + (f.workers || 0) + ' workers busy, ' + (f.queued || 0) + ' queued');
    (view.downstream || []).forEach(function (d) {
      var b = breakerOf(view, d.id) || {};
      parts.push(d.id + ' ' + downState(d) + ', breaker ' + stateText(b.state));
    });
    return parts.join('; ') + '.';
  }

  // ---------------------------------------------------------------- controls
  function wire(lab, panels) {
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

    ['retry', 'breaker', 'bulkhead', 'fallback'].forEach(function (s) {
      $('stage-' + s).addEventListener('change', function () {
        lab.dirty.stages = true;
        var cmd = { op: 'pipeline' };
        cmd[s] = $('stage-' + s).checked;
        lab.command(cmd).then(function () { lab.dirty.stages = false; });
      });
    });

    Array.prototype.forEach.call(document.querySelectorAll('input[name=retry-policy]'), function (radio) {
      radio.addEventListener('change', function () {
        if (!radio.checked) return;
        lab.dirty.policy = true;
        lab.command({ op: 'retry', policy: radio.value }).then(function () { lab.dirty.policy = false; });
      });
    });

    var tuning = ['timeout-ms', 'retry-attempts', 'retry-base', 'retry-budget', 'breaker-threshold', 'breaker-window', 'breaker-cooldown', 'breaker-probes', 'bulkhead-max'];
    tuning.forEach(function (id) { $(id).addEventListener('input', function () { lab.dirty.tuning = true; }); });
    function done() { lab.dirty.tuning = false; }
    function field(id, lo, hi, message) {
      var v = parseFloat($(id).value);
      if (!isFinite(v) || v < lo || v > hi) { lab.showError(message); $(id).focus(); return null; }
      return v;
    }
    $('timeout-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var t = field('timeout-ms', 1, 60000, 'The timeout must be 1 to 60000 ms.');
      if (t != null) lab.command({ op: 'timeout', timeout_ms: t }).then(done);
    });
    $('retry-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var a = lab.intField('retry-attempts', 1, 10, 'Attempts must be a whole number from 1 to 10.');
      if (a == null) return;
      var base = field('retry-base', 1, 1000, 'The base delay must be 1 to 1000 ms (the cap on a delay is 1 s).');
      if (base == null) return;
      var budget = field('retry-budget', 0, 1000, 'The retry budget must be 0 to 1000% of first attempts (0: no budget).');
      if (budget == null) return;
      var cmd = { op: 'retry', max_attempts: a, base_ms: base, budget: budget > 0 };
      if (budget > 0) cmd.budget_ratio = budget / 100;
      lab.command(cmd).then(done);
    });
    $('breaker-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var thr = field('breaker-threshold', 1, 100, 'The failure-rate threshold must be 1 to 100%.');
      if (thr == null) return;
      var win = lab.intField('breaker-window', 1, 1000, 'The window must be 1 to 1000 calls.');
      if (win == null) return;
      var cool = field('breaker-cooldown', 1, 600000, 'The open time must be 1 to 600000 ms.');
      if (cool == null) return;
      var probes = lab.intField('breaker-probes', 1, 100, 'Half-open probes must be 1 to 100.');
      if (probes == null) return;
      lab.command({ op: 'breaker', failure_rate_threshold: thr, window_size: win, wait_open_ms: cool, half_open_calls: probes }).then(done);
    });
    $('bulkhead-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var m = lab.intField('bulkhead-max', 1, 1000, 'The bulkhead must allow 1 to 1000 calls in flight.');
      if (m != null) lab.command({ op: 'bulkhead', limit: m }).then(done);
    });
    $('fallback-mode').addEventListener('change', function () { lab.dirty.tuning = true; });
    $('fallback-form').addEventListener('submit', function (event) {
      event.preventDefault();
      lab.command({ op: 'fallback', mode: $('fallback-mode').value }).then(done);
    });

    ['fault-error', 'fault-hang', 'fault-lat-min', 'fault-lat-max', 'fault-gray'].forEach(function (id) {
      $(id).addEventListener('input', function () { lab.dirty.fault = true; });
      $(id).addEventListener('change', function () { lab.dirty.fault = true; });
    });
    $('fault-node').addEventListener('change', function () { lab.dirty.fault = false; });
    $('fault-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var node = $('fault-node').value;
      var p = field('fault-error', 0, 100, 'The error rate must be 0 to 100%.');
      if (p == null) return;
      var a = parseFloat($('fault-lat-min').value), b = parseFloat($('fault-lat-max').value);
      var hang = field('fault-hang', 0, 100, 'The share of calls that hang must be 0 to 100%.');
      if (hang == null) return;
      var cmd = { op: 'downstream', node: node, error_rate: p / 100, hang_rate: hang / 100, gray: $('fault-gray').checked };
      if (isFinite(a) && isFinite(b)) {
        if (a < 0 || b < a || b > 60000) { lab.showError('Latency must be two numbers of ms, the first not larger than the second, at most 60000.'); return; }
        cmd.latency_ms = [a, b];
      }
      lab.command(cmd).then(function () { lab.dirty.fault = false; });
    });
    $('btn-fault-heal').addEventListener('click', function () {
      var node = $('fault-node').value;
      lab.dirty.fault = false;
      lab.command(healCmd(lab, node));
    });
  }

  /** Back to health: no errors, the downstream's original latency, not gray. */
  function healCmd(lab, id) {
    var cmd = { op: 'downstream', node: id, error_rate: 0, hang_rate: 0, gray: false };
    var view = lab.model.view || {};
    var base = view.params && view.params.downstream_latency_ms;
    if (Array.isArray(base)) cmd.latency_ms = base;
    return cmd;
  }

  function nodeMenu(id, lab) {
    if (id === 'front') {
      var f = (lab.model.view || {}).front || {};
      var up = f.alive !== false;
      return {
        title: 'front service, ' + (up ? 'up' : 'DOWN'),
        facts: (f.busy || 0) + ' of ' + (f.workers || 0) + ' workers busy · ' + (f.queued || 0) + ' queued (at most ' + (f.queue_limit || 0) + ')',
        actions: [
          { action: 'crash', label: 'Crash the front', disabled: !up, cmd: { op: 'crash', node: 'front' } },
          { action: 'restart', label: 'Restart the front', disabled: up, cmd: { op: 'restart', node: 'front' } },
        ],
      };
    }
    var d = lab.model.node(id, 'downstream');
    var view = lab.model.view || {};
    var b = breakerOf(view, id) || {};
    if (!d) return { title: id, actions: [] };
    var failing = d.error_rate > 0;
    var lat = Array.isArray(d.latency_ms) ? d.latency_ms : [d.latency_ms, d.latency_ms];
    return {
      title: id + ': downstream, ' + downState(d) + ', breaker ' + stateText(b.state),
      facts: (d.in_flight || 0) + ' in flight · ' + (d.received || 0) + ' calls received · errors ' + pct(d.error_rate) + ' · latency ' + latencyText(d.latency_ms),
      actions: [
        { action: 'fail', label: 'Make ' + id + ' fail every call', disabled: !d.alive || d.error_rate >= 1, cmd: { op: 'downstream', node: id, error_rate: 1 } },
        { action: 'flaky', label: 'Make ' + id + ' fail half the calls', disabled: !d.alive, cmd: { op: 'downstream', node: id, error_rate: 0.5 } },
        { action: 'slow', label: 'Slow ' + id + ' to 1–2 s', disabled: !d.alive, cmd: { op: 'downstream', node: id, latency_ms: [1000, 2000] } },
        { action: 'heal', label: 'Heal ' + id, disabled: !failing && !d.hang_rate && !d.gray && !(lat[1] > 200), cmd: healCmd(lab, id) },
        { action: 'crash', label: 'Crash ' + id, disabled: !d.alive, cmd: { op: 'crash', node: id } },
        { action: 'restart', label: 'Restart ' + id, disabled: d.alive, cmd: { op: 'restart', node: id } },
        { action: 'force-open', label: 'Force the breaker open', disabled: b.state === 'open', cmd: { op: 'force', node: id, state: 'open' } },
        { action: 'force-closed', label: 'Force the breaker closed', disabled: b.state === 'closed', cmd: { op: 'force', node: id, state: 'closed' } },
      ],
    };
  }

  // ------------------------------------------------------------------- start
  var drawing = null, panels = null;
  K.start({
    name: 'cbLab',
    init: function (lab) {
      drawing = new Drawing(lab);
      panels = new Panels(lab);
      wire(lab, panels);
    },
    frame: function (frame, view, ctx) {
      if (ctx.newEpoch) drawing.messages.clear();
      drawing.layoutFront(view);
      if (drawing.layoutDownstreams(view)) ctx.lab.closeMenu(false);
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
      var m = /(\S+)'s breaker (?:is now |went |moved to |)(open|closed|half[-_ ]open)/i.exec(e.text || '');
      if (m) return m[1] + ' ' + m[2].toLowerCase().replace('_', '-');
      if (e.kind === 'breaker' && e.node && e.to) return e.node + ' ' + stateText(e.to).toLowerCase();
      var fault = /^(d\d+): .*?(\d+)% errors/.exec(e.text || '');
      if (fault) return fault[1] + ' ' + fault[2] + '% errors';
      if (e.kind === 'fault' || e.kind === 'config') return U.shortLabel(e.text);
      return null;
    },
    partitionIds: function (view) {
      return ['front'].concat((view.downstream || []).map(function (d) { return d.id; }));
    },
  });
})();
