/* The lab page kit: what every lab page shares.
 *
 *   const lab = LabKit.start({
 *     frame(frame, view, ctx) { ... },   // draw the lab's own panels; ctx.newEpoch after a reset/reconnect
 *     tick(now) { ... },                  // 60 fps: move what moves, `now` is the estimated virtual time
 *     menu(id, lab) { return {title, facts, actions: [{action, label, cmd | run, disabled, danger}]}; },
 *     partitionIds(view) { return [...]; },   // who the partition picker offers (default: view.nodes)
 *     role(role) { ... },                 // after the role changed (owner | viewer)
 *     marker(event) { return label; },    // events worth a vertical line on the charts (lab.markers)
 *   });
 *   lab.command({op: 'crash', node: 'n1'});   // resolves with the result, or undefined after an error is shown
 *   lab.bindNode(g, id);                       // make a drawn node focusable and open its menu
 *   new LabKit.MessageLayer(layerEl, {position(id), build(msg, g)}).sync(view) / .draw(now)
 *
 * What the kit owns, found by id in the kit's partials (templates/lab/_kit/):
 * the connection status (#conn-status, #btn-reconnect), facts (#seed-value,
 * #vtime, #speed-value), run controls (#btn-pause, #btn-step, #speed, #reset-form,
 * #reset-seed, #btn-reset), keyboard (Space pauses, "." steps), #lab-status,
 * #lab-error, #readonly-note, #invariants, #narration (and its filter), the
 * network panel (#network-state, #drop-rate, #latency-form, #partition-picker,
 * #btn-partition, #btn-heal), the node menu (#node-menu), the share link, and a
 * key-value client form if the page has one (#client-form: #client-key,
 * #client-value, #btn-get, and optional #client-id and #client-via selects).
 *
 * The model is apart from the drawing (RaftScope's idea): LabModel holds the
 * latest frame and maps wall time to virtual time; it never touches the DOM.
 * The server sends at most 20 frames a second (fewer from a busy worker: each
 * frame says its rate); the page draws at 60 fps by
 * interpolating between them.
 */
(function (global) {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var MAX_LEAD_MS = 250; // never guess further than this past the last frame
  var MAX_NARRATION = 150;
  var INTERACT_MS = 1500; // ignore frame values for a control the learner is touching
  var LANE = 9; // messages keep to the right of their line, so a reply never hides its request

  var $ = function (id) { return document.getElementById(id); };

  // ---------------------------------------------------------------- helpers
  function svg(tag, attrs, parent) {
    var node = document.createElementNS(SVG_NS, tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setAttr(node, name, value) {
    value = String(value);
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  function setText(node, text) {
    text = String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function fmtTime(ms) {
    if (ms == null || !isFinite(ms)) return '–';
    if (ms < 10000) return ms.toFixed(1) + ' ms';
    return (ms / 1000).toFixed(3) + ' s';
  }

  function fmtShortTime(ms) {
    if (ms == null || !isFinite(ms)) return '–';
    if (ms < 10000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(2) + ' s';
  }

  /** A duration for people: 12 ms, 340 ms, 1.2 s. */
  function fmtMs(ms) {
    if (ms == null || !isFinite(ms)) return '–';
    if (ms < 10) return (Math.round(ms * 10) / 10) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }

  function fmtPct(fraction, digits) {
    if (fraction == null || !isFinite(fraction)) return '–';
    return (fraction * 100).toFixed(digits == null ? 0 : digits) + '%';
  }

  /** 0.01 -> "1/100x"; 1 -> "1x". */
  function speedLabel(speed) {
    if (!(speed > 0)) return '–';
    if (speed >= 0.995) return '1x';
    var n = 1 / speed;
    var rounded = n >= 100 ? Math.round(n / 10) * 10 : n >= 10 ? Math.round(n) : Math.round(n * 10) / 10;
    return '1/' + rounded + 'x';
  }

  /** "n1, n2 and n3". */
  function listText(items) {
    if (items.length <= 1) return items.join('');
    return items.slice(0, -1).join(', ') + ' and ' + items[items.length - 1];
  }

  /** A node keeps its colour (.c-0 .. .c-7 in lab.css) for the whole run: n1/b1 -> 0, n2/b2 -> 1, ... */
  function nodeColour(id) {
    var n = parseInt(String(id).replace(/\D+/g, ''), 10);
    return ((isFinite(n) && n > 0 ? n : 1) - 1) % 8;
  }

  /** Horizontal bars in `list` (a <ul class="bars">), one row per id: name, track, text.
   *  Rows are rebuilt only when the ids change; returns {id: li}. Fill one with setBar(). */
  function barList(list, ids) {
    var wanted = ids.join(',');
    if (list.getAttribute('data-ids') !== wanted) {
      list.replaceChildren();
      ids.forEach(function (id) {
        var li = html('li', { class: 'bar-row', 'data-bar-node': id });
        var name = html('span', { class: 'bar-name' });
        name.appendChild(html('span', { class: 'bar-swatch bg-c-' + nodeColour(id), 'aria-hidden': 'true' }));
        name.appendChild(document.createTextNode(id));
        var track = html('span', { class: 'bar-track', 'aria-hidden': 'true' });
        track.appendChild(html('span', { class: 'bar-fill bg-c-' + nodeColour(id) }));
        li.appendChild(name);
        li.appendChild(track);
        li.appendChild(html('span', { class: 'bar-text' }));
        list.appendChild(li);
      });
      list.setAttribute('data-ids', wanted);
    }
    var rows = {};
    Array.prototype.forEach.call(list.children, function (li) { rows[li.getAttribute('data-bar-node')] = li; });
    return rows;
  }

  function setBar(li, fraction, text, value) {
    li.querySelector('.bar-fill').style.width = (100 * Math.max(0, Math.min(1, fraction || 0))).toFixed(1) + '%';
    setText(li.querySelector('.bar-text'), text);
    setAttr(li, 'data-value', value);
  }

  /** Replace a <select>'s options by `values` (and a first option with value "" if `first`), keeping the choice. */
  function fillSelect(select, values, first) {
    var current = select.value;
    var options = values.map(function (v) { return html('option', { value: v }, v); });
    if (first) options.unshift(html('option', { value: '' }, first));
    select.replaceChildren.apply(select, options);
    if ((first && current === '') || values.indexOf(current) >= 0) select.value = current;
  }

  function isTypingTarget(target) {
    if (!target || !target.closest) return false;
    if (target.isContentEditable) return true;
    var field = target.closest('input, textarea, select');
    if (!field) return false;
    if (field.tagName !== 'INPUT') return true;
    return !/^(range|checkbox|radio|button|submit|reset)$/i.test(field.type);
  }

  function readConfig() {
    var lab = $('lab');
    var cfg = {};
    var script = $('lab-config');
    if (script) {
      try { cfg = JSON.parse(script.textContent) || {}; } catch (e) { cfg = {}; }
    }
    var data = lab ? lab.dataset : {};
    return {
      sim_id: cfg.sim_id || data.simId || '',
      ws_path: cfg.ws_path || data.wsPath || '',
      role: cfg.role || data.role || 'viewer',
      share_url: cfg.share_url || '',
      seed: cfg.seed,
      kind: cfg.kind || data.kind || '',
    };
  }

  // ------------------------------------------------------------------- model
  /** The latest frame and the virtual clock. No DOM in here. */
  function LabModel() {
    this.frame = null;
    this.view = null;
    this.receivedAt = 0;
    this.frames = 0;
  }

  /** Keep the new frame; returns true when it starts a new epoch (after a reset). */
  LabModel.prototype.accept = function (frame, at) {
    var newEpoch = !this.frame || frame.epoch !== this.frame.epoch;
    this.frame = frame;
    this.view = frame.view || {};
    this.receivedAt = at;
    this.frames += 1;
    return newEpoch;
  };

  /** Estimated virtual time at wall time `at` (performance.now()). */
  LabModel.prototype.now = function (at) {
    var f = this.frame;
    if (!f) return 0;
    if (f.paused) return f.now;
    var lead = Math.max(0, (at - this.receivedAt) * (f.speed || 0));
    return f.now + Math.min(lead, MAX_LEAD_MS);
  };

  /** The view's node (or any record in `list`, default "nodes") with this id. */
  LabModel.prototype.node = function (id, list) {
    var items = (this.view && this.view[list || 'nodes']) || [];
    for (var i = 0; i < items.length; i++) if (items[i].id === id) return items[i];
    return null;
  };

  // ---------------------------------------------------------------- messages
  var CHECK = 'M-7 0 L-2.5 6 L7 -6';
  var CROSS = 'M-6 -6 L6 6 M6 -6 L-6 6';

  /** Messages in flight, drawn between their endpoints by interpolating send_ms..deliver_ms.
   *
   *   position(id) -> {x, y, r} or null    where an endpoint is (r: keep this far from its centre;
   *                                        or hw, hh: the half width and height of a box to start at its edge)
   *   build(msg, g)                        draw the message's shape into g (centred on 0,0)
   *   lane                                 sideways offset so a reply does not hide its request
   */
  function MessageLayer(layer, options) {
    this.layer = layer;
    this.position = options.position;
    this.build = options.build;
    this.lane = options.lane == null ? LANE : options.lane;
    this.entries = new Map();
  }

  MessageLayer.prototype.sync = function (messages) {
    var seen = new Set();
    var self = this;
    (messages || []).forEach(function (msg) {
      seen.add(msg.id);
      var entry = self.entries.get(msg.id);
      if (!entry) {
        var g = svg('g', { class: 'msg msg-type-' + msg.type, 'data-msg-id': msg.id, 'data-msg-type': msg.type }, self.layer);
        self.build(msg, g);
        var lostX = msg.lost ? svg('path', { class: 'msg-lost-x', d: 'M-15 -15 L15 15 M15 -15 L-15 15' }, g) : null;
        entry = { g: g, lostX: lostX, shown: true };
        self.entries.set(msg.id, entry);
      }
      entry.msg = msg;
      entry.geo = self.geometry(msg);
    });
    this.entries.forEach(function (entry, id) {
      if (!seen.has(id)) { entry.g.remove(); self.entries.delete(id); }
    });
  };

  MessageLayer.prototype.clear = function () {
    this.entries.forEach(function (entry) { entry.g.remove(); });
    this.entries.clear();
  };

  MessageLayer.prototype.geometry = function (msg) {
    var a = this.position(msg.from), b = this.position(msg.to);
    if (!a || !b) return null;
    var dx = b.x - a.x, dy = b.y - a.y;
    var len = Math.hypot(dx, dy) || 1;
    var ux = dx / len, uy = dy / len;
    var nx = -uy * this.lane, ny = ux * this.lane;
    var ra = edgeDistance(a, ux, uy), rb = edgeDistance(b, ux, uy);
    return {
      x0: a.x + ux * ra + nx, y0: a.y + uy * ra + ny,
      x1: b.x - ux * rb + nx, y1: b.y - uy * rb + ny,
    };
  };

  /** How far from an endpoint's centre its edge is, going in direction (ux, uy). */
  function edgeDistance(p, ux, uy) {
    if (p.hw != null) {
      var tx = Math.abs(ux) > 1e-6 ? p.hw / Math.abs(ux) : Infinity;
      var ty = Math.abs(uy) > 1e-6 ? p.hh / Math.abs(uy) : Infinity;
      return Math.min(tx, ty) + 3;
    }
    return p.r || 0;
  }

  MessageLayer.prototype.draw = function (now) {
    this.entries.forEach(function (entry) {
      var msg = entry.msg, geo = entry.geo;
      var span = msg.deliver_ms - msg.send_ms;
      var t = span > 0 ? (now - msg.send_ms) / span : 1;
      var visible = !!geo && t <= 1 && t >= -0.001;
      if (visible !== entry.shown) {
        entry.g.style.display = visible ? '' : 'none';
        entry.shown = visible;
      }
      if (!visible) return;
      t = Math.max(0, Math.min(1, t));
      var x = geo.x0 + (geo.x1 - geo.x0) * t;
      var y = geo.y0 + (geo.y1 - geo.y0) * t;
      entry.g.setAttribute('transform', 'translate(' + x.toFixed(1) + ' ' + y.toFixed(1) + ')');
      if (msg.lost) {
        var fade = t < 0.5 ? 1 : 1 - ((t - 0.5) / 0.5) * 0.8;
        entry.g.style.opacity = fade.toFixed(2);
        if (entry.lostX) entry.lostX.style.display = t > 0.45 ? '' : 'none';
      }
    });
  };

  /** A tick or a cross inside a message shape (a vote granted, a reply that failed). */
  function messageMark(g, ok) {
    return svg('path', { class: ok ? 'msg-mark' : 'msg-mark msg-mark-no', d: ok ? CHECK : CROSS }, g);
  }

  // --------------------------------------------------------------------- lab
  function Lab(page) {
    this.page = page || {};
    this.cfg = this.page.cfg || readConfig();
    this.role = this.cfg.role === 'owner' ? 'owner' : 'viewer';
    this.model = new LabModel();
    this.el = $('lab');
    this.lastEventSeq = 0;
    this.keys = {};
    this.touched = {};
    this.dirty = {};
    this.menuNode = null;
    this.menuReturn = null;
    this.errorTimer = null;
    this.statusTimer = null;
    this.fresh = false;
    this.menuActions = {};
    this.markers = []; // [{t, label}] from the events the page's marker() picks, for the charts
    this.markerSeq = 0;
    this.socket = new global.LabSocket(this.cfg.ws_path, { statusEl: $('conn-status') });
  }

  Lab.prototype.start = function () {
    var self = this;
    var sock = this.socket;
    this.applyRole(this.role);
    this.wireControls();
    sock.on('frame', function (frame) { self.onFrame(frame); });
    sock.on('hello', function (hello) {
      if (hello.role) self.applyRole(hello.role);
      // A (re)connection may meet a restarted server: start the panels afresh
      // from the next frame, which carries the latest events and messages.
      self.fresh = true;
    });
    sock.on('error', function (msg) { self.showError(msg.message || 'The server refused that request.'); });
    sock.on('status', function (msg) { self.showStatus(msg.level, msg.message); });
    sock.on('state', function (s) {
      setAttr(self.el, 'data-connection', s.state);
      $('btn-reconnect').hidden = s.state !== 'reconnecting';
      if (!self.model.frame) {
        var text = s.state === 'closed' ? 'Not connected: ' + (s.reason || 'closed')
          : s.state === 'reconnecting' ? 'Waiting for the server…' : 'Connecting to the simulation…';
        self.placeholders().forEach(function (p) { setText(p, text); });
      }
    });
    if (this.cfg.ws_path) {
      sock.connect();
    } else {
      sock._setState('closed', 'This page has no simulation to connect to.');
    }
    var loop = function () {
      self.tick();
      global.requestAnimationFrame(loop);
    };
    global.requestAnimationFrame(loop);
    return this;
  };

  Lab.prototype.placeholders = function () {
    return Array.prototype.slice.call(this.el.querySelectorAll('.lab-placeholder'));
  };

  Lab.prototype.applyRole = function (role) {
    this.role = role === 'owner' ? 'owner' : 'viewer';
    var viewer = this.role === 'viewer';
    setAttr(this.el, 'data-role', this.role);
    this.el.classList.toggle('is-viewer', viewer);
    $('readonly-note').hidden = !viewer;
    Array.prototype.forEach.call(this.el.querySelectorAll('fieldset.owner-only'), function (fs) { fs.disabled = viewer; });
    Array.prototype.forEach.call(this.el.querySelectorAll('[data-node-id][role=button]'), function (g) {
      if (viewer) g.removeAttribute('aria-haspopup'); else g.setAttribute('aria-haspopup', 'dialog');
    });
    if (viewer) this.closeMenu(false);
    if (this.page.role) this.page.role(this.role);
  };

  // ---- frames
  Lab.prototype.onFrame = function (frame) {
    var at = performance.now();
    var newEpoch = this.model.accept(frame, at) || this.fresh;
    var view = this.model.view;
    this.fresh = false;
    if (newEpoch) {
      this.resetNarration();
      this.keys = {};
      this.markers = [];
      this.markerSeq = 0;
    }
    this.collectMarkers(view);
    setAttr(this.el, 'data-frame-seq', frame.seq);
    setAttr(this.el, 'data-epoch', frame.epoch);
    setAttr(this.el, 'data-paused', frame.paused ? 'true' : 'false');
    this.placeholders().forEach(function (p) { p.style.display = 'none'; });
    this.renderFacts(frame, view);
    if (this.page.frame) this.page.frame(frame, view, { newEpoch: newEpoch, lab: this });
    this.renderInvariants(view);
    this.renderNarration(view);
    this.renderNetwork(view);
    this.renderPartitionPicker(view);
    if (this.menuNode) this.updateMenu();
  };

  Lab.prototype.collectMarkers = function (view) {
    if (!this.page.marker) return;
    var self = this;
    (view.events || []).forEach(function (e) {
      if (e.seq <= self.markerSeq) return;
      self.markerSeq = e.seq;
      var label = self.page.marker(e);
      if (label) self.markers.push({ t: e.at_ms, label: label });
    });
    if (this.markers.length > 30) this.markers.splice(0, this.markers.length - 30);
  };

  /** An event's text up to its first ": ", " (" or "; ", at most `max` characters: a chart marker's label. */
  function shortLabel(text, max) {
    var cut = String(text).split(/: |; | \(/)[0];
    max = max || 28;
    return cut.length > max ? cut.slice(0, max - 1) + '…' : cut;
  }

  Lab.prototype.tick = function () {
    if (!this.model.frame) return;
    var now = this.model.now(performance.now());
    if (this.page.tick) this.page.tick(now);
    setText($('vtime'), fmtTime(now));
  };

  /** True when `value` differs from what `name` held last time (and remember it). */
  Lab.prototype.changed = function (name, value) {
    var key = typeof value === 'string' ? value : JSON.stringify(value);
    if (this.keys[name] === key) return false;
    this.keys[name] = key;
    return true;
  };

  /** The learner is dragging or typing in this control right now: leave its value alone. */
  Lab.prototype.touching = function (id) {
    var el = $(id);
    return document.activeElement === el && Date.now() - (this.touched[id] || 0) < INTERACT_MS;
  };

  Lab.prototype.renderFacts = function (frame, view) {
    setText($('seed-value'), view.seed != null ? view.seed : this.cfg.seed != null ? this.cfg.seed : '–');
    setText($('speed-value'), speedLabel(frame.speed) + (frame.paused ? ' (paused)' : ''));
    var pause = $('btn-pause');
    setText(pause, frame.paused ? 'Resume' : 'Pause');
    setAttr(pause, 'data-paused', frame.paused ? 'true' : 'false');
    var slider = $('speed');
    if (!this.touching('speed') && !this.dirty.speed && frame.speed > 0) {
      var v = Math.log10(frame.speed);
      if (Math.abs(parseFloat(slider.value) - v) > 0.049) slider.value = String(v);
      this.showSpeed(frame.speed);
    }
  };

  Lab.prototype.showSpeed = function (speed) {
    var label = speedLabel(speed);
    setText($('speed-label'), label);
    setAttr($('speed'), 'aria-valuetext', label);
  };

  Lab.prototype.renderInvariants = function (view) {
    var items = view.invariants || [];
    if (!this.changed('invariants', items)) return;
    var list = $('invariants');
    if (!list) return;
    var waiting = list.querySelector('.inv-waiting');
    if (waiting) waiting.remove();
    var seen = new Set();
    var broken = 0;
    items.forEach(function (inv) {
      seen.add(inv.id);
      var li = list.querySelector('li[data-invariant="' + CSS.escape(inv.id) + '"]');
      if (!li) {
        li = html('li', { 'data-invariant': inv.id, class: 'inv' });
        li.appendChild(html('span', { class: 'inv-mark', 'aria-hidden': 'true' }));
        li.appendChild(html('span', { class: 'inv-title' }));
        li.appendChild(html('span', { class: 'inv-state' }));
        li.appendChild(html('p', { class: 'inv-detail' }));
        list.appendChild(li);
      }
      var ok = !!inv.ok;
      if (!ok) broken += 1;
      setAttr(li, 'data-ok', ok ? 'true' : 'false');
      li.classList.toggle('inv-ok', ok);
      li.classList.toggle('inv-broken', !ok);
      setText(li.querySelector('.inv-mark'), ok ? '✓' : '✗');
      setText(li.querySelector('.inv-title'), inv.title || inv.id);
      setText(li.querySelector('.inv-state'), ok ? 'holds' : 'BROKEN');
      var detail = li.querySelector('.inv-detail');
      setText(detail, ok ? '' : inv.detail || '');
      detail.hidden = ok || !inv.detail;
    });
    Array.prototype.forEach.call(list.querySelectorAll('li[data-invariant]'), function (li) {
      if (!seen.has(li.getAttribute('data-invariant'))) li.remove();
    });
    if (!items.length && !list.querySelector('li')) list.appendChild(html('li', { class: 'inv-waiting' }, 'No invariants for this lab.'));
    var panel = list.closest('.panel');
    if (panel) panel.classList.toggle('has-violation', broken > 0);
  };

  // ---- narration
  Lab.prototype.narrationFilter = function () {
    return this.el.querySelector('input[data-narration-filter]');
  };

  /** Event kinds the filter checkbox hides while it is ticked. */
  Lab.prototype.hiddenKinds = function () {
    var box = this.narrationFilter();
    if (!box || !box.checked) return [];
    return (box.getAttribute('data-hide-kinds') || '').split(/[\s,]+/).filter(Boolean);
  };

  Lab.prototype.resetNarration = function () {
    var list = $('narration');
    if (list) clear(list);
    this.lastEventSeq = 0;
  };

  Lab.prototype.renderNarration = function (view) {
    var list = $('narration');
    if (!list) return;
    var events = view.events || [];
    var last = this.lastEventSeq;
    var fresh = events.filter(function (e) { return e.seq > last; });
    if (!fresh.length) return;
    var hidden = this.hiddenKinds();
    var bulk = fresh.length > 5;
    if (bulk) list.setAttribute('aria-busy', 'true');
    fresh.forEach(function (e) {
      var li = html('li', { class: 'event event-' + e.kind, 'data-kind': e.kind, 'data-seq': e.seq });
      if (e.node) li.setAttribute('data-node', e.node);
      li.appendChild(html('span', { class: 'event-time' }, fmtShortTime(e.at_ms)));
      var body = html('span', { class: 'event-body' });
      body.appendChild(html('span', { class: 'event-kind' }, e.kind));
      body.appendChild(document.createTextNode(' '));
      body.appendChild(html('span', { class: 'event-text' }, e.text));
      li.appendChild(body);
      if (hidden.indexOf(e.kind) >= 0) li.hidden = true;
      list.insertBefore(li, list.firstChild);
    });
    this.lastEventSeq = fresh[fresh.length - 1].seq;
    while (list.children.length > MAX_NARRATION) list.removeChild(list.lastChild);
    if (bulk) list.setAttribute('aria-busy', 'false');
  };

  Lab.prototype.applyNarrationFilter = function () {
    var box = this.narrationFilter();
    var list = $('narration');
    if (!box || !list) return;
    var kinds = (box.getAttribute('data-hide-kinds') || '').split(/[\s,]+/).filter(Boolean);
    var hide = box.checked;
    list.classList.toggle('is-filtered', hide);
    Array.prototype.forEach.call(list.children, function (li) {
      if (kinds.indexOf(li.getAttribute('data-kind')) >= 0) li.hidden = hide;
    });
  };

  // ---- network
  Lab.prototype.renderNetwork = function (view) {
    var state = $('network-state');
    if (!state) return;
    var net = view.network || {};
    var parts = [];
    var lat = net.latency_ms || [];
    if (lat.length === 2) parts.push('Latency ' + lat[0] + '–' + lat[1] + ' ms');
    parts.push(Math.round((net.drop_rate || 0) * 100) + '% message loss');
    if (net.duplicate_rate) parts.push(Math.round(net.duplicate_rate * 100) + '% duplicated');
    if (net.reorder_rate) parts.push(Math.round(net.reorder_rate * 100) + '% reordered');
    var groups = net.partition || [];
    parts.push(groups.length
      ? 'partitioned: ' + groups.map(function (g, i) { return String.fromCharCode(65 + i) + ' {' + g.join(', ') + '}'; }).join(' | ')
      : 'no partition');
    (net.cuts || []).forEach(function (c) { parts.push('link ' + c[0] + '→' + c[1] + ' cut'); });
    setText(state, parts.join(' · '));
    setAttr(state, 'data-partitioned', groups.length ? 'true' : 'false');
    if (net.counts) {
      setAttr(state, 'title', 'sent ' + net.counts.sent + ', delivered ' + net.counts.delivered + ', dropped ' + net.counts.dropped);
    }
    var drop = $('drop-rate');
    if (drop && !this.touching('drop-rate') && !this.dirty['drop-rate']) {
      var pct = Math.round((net.drop_rate || 0) * 100);
      if (String(pct) !== drop.value) drop.value = String(pct);
      this.showDrop(pct);
    }
    if (lat.length === 2 && $('latency-min')) {
      var minEl = $('latency-min'), maxEl = $('latency-max');
      var editing = document.activeElement === minEl || document.activeElement === maxEl || this.dirty.latency;
      if (!editing) {
        if (minEl.value !== String(lat[0])) minEl.value = String(lat[0]);
        if (maxEl.value !== String(lat[1])) maxEl.value = String(lat[1]);
      }
    }
  };

  Lab.prototype.showDrop = function (pct) {
    setText($('drop-rate-label'), pct + '%');
    setAttr($('drop-rate'), 'aria-valuetext', pct + '%');
  };

  Lab.prototype.partitionIds = function (view) {
    if (this.page.partitionIds) return this.page.partitionIds(view);
    return (view.nodes || []).map(function (n) { return n.id; });
  };

  Lab.prototype.renderPartitionPicker = function (view) {
    var picker = $('partition-picker');
    if (!picker) return;
    var ids = this.partitionIds(view);
    if (!this.changed('picker', ids)) return;
    var checked = {};
    Array.prototype.forEach.call(picker.querySelectorAll('input[type=checkbox]'), function (box) { checked[box.value] = box.checked; });
    picker.replaceChildren();
    ids.forEach(function (id) {
      var label = html('label', { class: 'check side-b-choice' });
      var box = html('input', { type: 'checkbox', name: 'side-b', value: id, id: 'side-b-' + id });
      box.checked = !!checked[id];
      label.appendChild(box);
      label.appendChild(document.createTextNode(' ' + id));
      picker.appendChild(label);
    });
  };

  // ---- drawn nodes and their menu
  /** A drawn node: focusable, a button for the keyboard; Enter/Space/click opens its menu, arrows move. */
  Lab.prototype.bindNode = function (g, id) {
    var self = this;
    g.setAttribute('data-node-id', id);
    g.setAttribute('tabindex', '0');
    g.setAttribute('role', 'button');
    if (this.role === 'owner') g.setAttribute('aria-haspopup', 'dialog');
    g.addEventListener('click', function () { self.openMenu(id, g); });
    g.addEventListener('keydown', function (event) { self.onNodeKey(event, id, g); });
  };

  Lab.prototype.onNodeKey = function (event, id, g) {
    var key = event.key;
    if (key === 'Enter' || key === ' ' || key === 'Spacebar') {
      event.preventDefault();
      event.stopPropagation();
      this.openMenu(id, g);
      return;
    }
    if (key === 'ArrowRight' || key === 'ArrowDown' || key === 'ArrowLeft' || key === 'ArrowUp') {
      event.preventDefault();
      var drawing = g.ownerSVGElement || g.parentNode;
      var all = Array.prototype.slice.call(drawing.querySelectorAll('[data-node-id][role=button]'));
      var i = all.indexOf(g);
      var step = key === 'ArrowRight' || key === 'ArrowDown' ? 1 : -1;
      var next = all[(i + step + all.length) % all.length];
      if (next) next.focus();
    }
  };

  Lab.prototype.openMenu = function (id, g) {
    if (this.role !== 'owner' || !this.page.menu) return;
    var menu = $('node-menu');
    if (!menu) return;
    this.menuNode = id;
    this.menuReturn = g;
    menu.hidden = false;
    menu.setAttribute('data-node', id);
    this.updateMenu();
    // place the menu beside the node, inside the drawing's box
    var wrap = menu.offsetParent ? menu.offsetParent.getBoundingClientRect() : document.body.getBoundingClientRect();
    var anchor = g.querySelector('[data-menu-anchor]') || g;
    var box = anchor.getBoundingClientRect();
    var mw = menu.offsetWidth, mh = menu.offsetHeight;
    var left = box.right - wrap.left + 12;
    if (left + mw > wrap.width) left = box.left - wrap.left - mw - 12;
    left = Math.max(4, Math.min(left, wrap.width - mw - 4));
    var top = box.top - wrap.top + box.height / 2 - mh / 2;
    top = Math.max(4, Math.min(top, wrap.height - mh - 4));
    menu.style.left = left + 'px';
    menu.style.top = top + 'px';
    var first = menu.querySelector('.node-menu-buttons button:not(:disabled)') || menu.querySelector('[data-action=close]');
    if (first) first.focus();
  };

  /** Bring the open menu up to date with the latest frame: labels, facts, which actions are possible. */
  Lab.prototype.updateMenu = function () {
    var id = this.menuNode;
    var menu = $('node-menu');
    var spec = this.page.menu(id, this) || { title: id, actions: [] };
    setText($('node-menu-title'), spec.title || id);
    setText($('node-menu-facts'), spec.facts || '');
    var box = menu.querySelector('.node-menu-buttons');
    var actions = spec.actions || [];
    var names = actions.map(function (a) { return a.action; }).join(' ');
    if (box.getAttribute('data-actions') !== names) {
      var hadFocus = box.contains(document.activeElement);
      box.replaceChildren();
      actions.forEach(function (a) {
        box.appendChild(html('button', { type: 'button', 'data-action': a.action, class: a.danger ? 'danger' : null }));
      });
      box.setAttribute('data-actions', names);
      if (hadFocus) {
        var f = box.querySelector('button:not(:disabled)') || menu.querySelector('[data-action=close]');
        if (f) f.focus();
      }
    }
    this.menuActions = {};
    var self = this;
    actions.forEach(function (a) {
      self.menuActions[a.action] = a;
      var b = box.querySelector('button[data-action="' + CSS.escape(a.action) + '"]');
      setText(b, a.label);
      var disable = !!a.disabled;
      if (b.disabled !== disable) {
        var hadFocus = document.activeElement === b;
        b.disabled = disable;
        if (hadFocus && disable) {
          var other = box.querySelector('button:not(:disabled)') || menu.querySelector('[data-action=close]');
          if (other) other.focus();
        }
      }
    });
  };

  Lab.prototype.closeMenu = function (restoreFocus) {
    var menu = $('node-menu');
    if (!menu || menu.hidden) return;
    menu.hidden = true;
    var ret = this.menuReturn;
    this.menuNode = null;
    this.menuReturn = null;
    if (restoreFocus && ret && document.contains(ret)) ret.focus();
  };

  // ---- sending
  Lab.prototype.send = function (promise) {
    var self = this;
    return promise.then(function (result) { self.clearError(); return result; }, function (err) {
      if (err && err.local) self.showError(err.message);
      throw err;
    }).catch(function () { return undefined; });
  };

  Lab.prototype.command = function (cmd) {
    return this.send(this.socket.command(cmd));
  };

  Lab.prototype.control = function (action, extra) {
    return this.send(this.socket.control(action, extra));
  };

  Lab.prototype.showError = function (text) {
    var box = $('lab-error');
    var p = html('p', { class: 'lab-error-text' }, text);
    var dismiss = html('button', { type: 'button', class: 'small lab-error-dismiss' }, 'Dismiss');
    var self = this;
    dismiss.addEventListener('click', function () { self.clearError(); });
    box.replaceChildren(p, dismiss);
    box.classList.add('has-error');
    clearTimeout(this.errorTimer);
    this.errorTimer = setTimeout(function () { self.clearError(); }, 15000);
  };

  Lab.prototype.clearError = function () {
    var box = $('lab-error');
    if (!box.classList.contains('has-error')) return;
    if (box.contains(document.activeElement)) $('btn-pause').focus();
    box.replaceChildren();
    box.classList.remove('has-error');
    clearTimeout(this.errorTimer);
  };

  Lab.prototype.showStatus = function (level, text) {
    var box = $('lab-status');
    box.textContent = text || '';
    box.className = 'lab-status level-' + (level === 'warn' ? 'warn' : 'info') + (text ? ' has-status' : '');
    clearTimeout(this.statusTimer);
    if (level !== 'warn') {
      this.statusTimer = setTimeout(function () { box.textContent = ''; box.className = 'lab-status'; }, 20000);
    }
  };

  Lab.prototype.togglePause = function () {
    var f = this.model.frame;
    return this.control(f && f.paused ? 'resume' : 'pause');
  };

  /** A whole number from a field, or null after showing `message` (and focusing the field). */
  Lab.prototype.intField = function (id, lo, hi, message) {
    var el = $(id);
    var raw = el.value.trim();
    var n = Number(raw);
    if (raw === '' || !Number.isInteger(n) || n < lo || n > hi) {
      this.showError(message);
      el.focus();
      return null;
    }
    return n;
  };

  // ---- wiring
  Lab.prototype.wireControls = function () {
    var self = this;
    $('btn-pause').addEventListener('click', function () { self.togglePause(); });
    $('btn-step').addEventListener('click', function () { self.control('step'); });
    $('btn-reconnect').addEventListener('click', function () { self.socket.reconnectNow(); });

    var speed = $('speed');
    speed.addEventListener('input', function () {
      self.touched.speed = Date.now();
      self.showSpeed(Math.pow(10, parseFloat(speed.value)));
    });
    speed.addEventListener('change', function () {
      self.touched.speed = Date.now();
      var value = Math.pow(10, parseFloat(speed.value));
      value = Math.max(0.001, Math.min(1, Math.round(value * 1e6) / 1e6));
      self.dirty.speed = true; // until a frame shows the new speed (an older one must not move the slider back)
      self.control('speed', { speed: value }).then(function () { self.dirty.speed = false; });
    });

    $('reset-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var raw = $('reset-seed').value.trim();
      var seed = null;
      if (raw !== '') {
        if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
          self.showError('The seed must be a whole number of 0 or more, or empty for a random one.');
          return;
        }
        seed = Number(raw);
      }
      self.control('reset', { seed: seed });
    });

    this.wireNetwork();
    this.wireClientForm();

    var filter = this.narrationFilter();
    if (filter) {
      var storeKey = 'patternsLab.narrationFilter.' + (this.cfg.kind || 'lab');
      try { filter.checked = global.localStorage.getItem(storeKey) === '1'; } catch (e) { /* ignore */ }
      this.applyNarrationFilter();
      filter.addEventListener('change', function () {
        try { global.localStorage.setItem(storeKey, filter.checked ? '1' : '0'); } catch (e) { /* ignore */ }
        self.applyNarrationFilter();
      });
    }

    var copy = $('btn-copy-share');
    if (copy) {
      copy.addEventListener('click', function () {
        var input = $('share-url');
        var done = function () { setText($('share-copied'), 'Copied'); setTimeout(function () { setText($('share-copied'), ''); }, 4000); };
        var fallback = function () {
          input.focus();
          input.select();
          try { document.execCommand('copy'); done(); } catch (e) { setText($('share-copied'), 'Select the link and copy it'); }
        };
        if (navigator.clipboard && global.isSecureContext) navigator.clipboard.writeText(input.value).then(done, fallback);
        else fallback();
      });
    }

    this.wireMenu();
    document.addEventListener('keydown', function (event) { self.onShortcut(event); });
  };

  Lab.prototype.wireNetwork = function () {
    var self = this;
    var drop = $('drop-rate');
    if (drop) {
      drop.addEventListener('input', function () {
        self.touched['drop-rate'] = Date.now();
        self.dirty['drop-rate'] = true;
        self.showDrop(parseInt(drop.value, 10));
      });
      drop.addEventListener('change', function () {
        self.touched['drop-rate'] = Date.now();
        var p = Math.max(0, Math.min(100, parseInt(drop.value, 10) || 0)) / 100;
        self.command({ op: 'network', drop_rate: p }).then(function () { self.dirty['drop-rate'] = false; });
      });
    }

    var latency = $('latency-form');
    if (latency) {
      ['latency-min', 'latency-max'].forEach(function (id) {
        $(id).addEventListener('input', function () { self.dirty.latency = true; });
      });
      latency.addEventListener('submit', function (event) {
        event.preventDefault();
        var a = parseFloat($('latency-min').value), b = parseFloat($('latency-max').value);
        if (!isFinite(a) || !isFinite(b) || a < 0 || b < 0 || a > 10000 || b > 10000) {
          self.showError('Latency must be two numbers of milliseconds from 0 to 10000.');
          return;
        }
        if (a > b) {
          self.showError('The first latency must not be larger than the second.');
          return;
        }
        self.command({ op: 'network', latency_ms: [a, b] }).then(function () { self.dirty.latency = false; });
      });
    }

    var partition = $('btn-partition');
    if (partition) {
      partition.addEventListener('click', function () {
        var sideA = [], sideB = [];
        Array.prototype.forEach.call($('partition-picker').querySelectorAll('input[type=checkbox]'), function (box) {
          (box.checked ? sideB : sideA).push(box.value);
        });
        if (!sideB.length || !sideA.length) {
          self.showError('Tick at least one node for side B, and leave at least one on side A.');
          return;
        }
        self.command({ op: 'partition', groups: [sideA, sideB] });
      });
      $('btn-heal').addEventListener('click', function () { self.command({ op: 'heal' }); });
    }
  };

  /** Put (the form's submit) and Get: {op, key, value?, client?, via?} from the client form's fields. */
  Lab.prototype.wireClientForm = function () {
    var form = $('client-form');
    if (!form) return;
    var self = this;
    function request(op) {
      var key = $('client-key').value.trim();
      if (!key) {
        self.showError('Type a key first, for example x.');
        $('client-key').focus();
        return;
      }
      var cmd = { op: op, key: key };
      if ($('client-id') && $('client-id').value) cmd.client = $('client-id').value;
      if ($('client-via') && $('client-via').value) cmd.via = $('client-via').value;
      if (op === 'put') {
        var raw = $('client-value').value.trim();
        if (raw === '') {
          self.showError('Type a value to put, for example 3.');
          $('client-value').focus();
          return;
        }
        cmd.value = /^-?\d{1,15}$/.test(raw) ? Number(raw) : raw;
      }
      self.command(cmd);
    }
    form.addEventListener('submit', function (event) { event.preventDefault(); request('put'); });
    $('btn-get').addEventListener('click', function () { request('get'); });
  };

  Lab.prototype.wireMenu = function () {
    var self = this;
    var menu = $('node-menu');
    if (!menu) return;
    menu.addEventListener('click', function (event) {
      var button = event.target.closest('button[data-action]');
      if (!button || button.disabled) return;
      var action = button.getAttribute('data-action');
      var spec = action !== 'close' && self.menuActions ? self.menuActions[action] : null;
      self.closeMenu(true);
      if (!spec) return;
      if (spec.run) spec.run();
      else if (spec.cmd) self.command(spec.cmd);
    });
    menu.addEventListener('keydown', function (event) {
      if (event.key === 'Escape') { event.preventDefault(); self.closeMenu(true); }
    });
    menu.addEventListener('focusout', function (event) {
      var to = event.relatedTarget;
      if (to && !menu.contains(to) && to !== self.menuReturn) self.closeMenu(false);
    });
    document.addEventListener('pointerdown', function (event) {
      if (menu.hidden) return;
      if (menu.contains(event.target)) return;
      if (event.target.closest && event.target.closest('[data-node-id][role=button]')) return;
      self.closeMenu(false);
    });
  };

  /** Space: pause or resume; ".": one step (presenter remotes send "."). Not while typing. */
  Lab.prototype.onShortcut = function (event) {
    if (this.role !== 'owner') return;
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (isTypingTarget(target)) return;
    if (event.key === '.') {
      event.preventDefault();
      this.control('step');
      return;
    }
    if (event.key === ' ' || event.key === 'Spacebar') {
      // Space keeps its own meaning on buttons, links, checkboxes and nodes.
      if (target && target.closest && target.closest('button, a[href], summary, input, select, [role=button]')) {
        var range = target.closest('input[type=range]');
        if (!range) return;
      }
      event.preventDefault();
      this.togglePause();
    }
  };

  // ------------------------------------------------------------------- start
  /** Start the lab once the document is parsed; `page.name` also names it on window (e.g. raftLab). */
  function start(page) {
    var lab = null;
    function boot() {
      if (!$('lab') || !global.LabSocket) return;
      lab = new Lab(page);
      global.lab = lab; // for the console and for browser tests: lab.model.frame
      if (page.name) global[page.name] = lab;
      if (page.init) page.init(lab);
      lab.start();
    }
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
    else boot();
  }

  global.LabKit = {
    start: start,
    Lab: Lab,
    LabModel: LabModel,
    MessageLayer: MessageLayer,
    messageMark: messageMark,
    readConfig: readConfig,
    util: {
      $: $, svg: svg, html: html, clear: clear, setAttr: setAttr, setText: setText,
      fmtTime: fmtTime, fmtShortTime: fmtShortTime, fmtMs: fmtMs, fmtPct: fmtPct,
      speedLabel: speedLabel, listText: listText, isTypingTarget: isTypingTarget,
      nodeColour: nodeColour, barList: barList, setBar: setBar, shortLabel: shortLabel, fillSelect: fillSelect,
    },
  };
})(window);
