/* The Raft lab page.
 *
 * RaftScope's idea, kept: the model is apart from the drawing.
 *   - LabModel holds the latest frame and maps wall time to virtual time; it
 *     never touches the DOM.
 *   - When a frame arrives, the panels (logs, narration, invariants, history,
 *     controls) are brought up to date from it, each only when its part changed.
 *   - A requestAnimationFrame loop asks the model for the estimated virtual time
 *     and redraws only what moves: messages in flight (interpolated between
 *     send_ms and deliver_ms), election-timer arcs and the clock.
 *
 * The server sends at most 20 frames a second; the loop draws at 60 fps.
 */
(function () {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var RING = { cx: 530, cy: 338, r: 240 };
  var NODE_R = 54; // for up to 5 nodes; larger clusters get smaller nodes (see nodeRadius)
  var MAX_LEAD_MS = 250; // never guess further than this past the last frame
  var LOG_COLUMNS = 20;
  var MAX_NARRATION = 150;
  var LANE = 9; // messages keep to the right of their line, so a reply never hides its request
  var INTERACT_MS = 1500; // ignore frame values for a control the learner is touching

  var $ = function (id) { return document.getElementById(id); };

  function nodeRadius(count) {
    return count <= 5 ? NODE_R : count <= 7 ? 48 : 42;
  }

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

  /** 0.01 -> "1/100x"; 1 -> "1x". */
  function speedLabel(speed) {
    if (!(speed > 0)) return '–';
    if (speed >= 0.995) return '1x';
    var n = 1 / speed;
    var rounded = n >= 100 ? Math.round(n / 10) * 10 : n >= 10 ? Math.round(n) : Math.round(n * 10) / 10;
    return '1/' + rounded + 'x';
  }

  function nodeOrder(a, b) {
    var na = parseInt(String(a).replace(/\D+/g, ''), 10) || 0;
    var nb = parseInt(String(b).replace(/\D+/g, ''), 10) || 0;
    return na - nb || (a < b ? -1 : a > b ? 1 : 0);
  }

  function shortCommand(cmd) {
    if (!cmd || cmd.op === 'noop') return '·';
    if (cmd.op === 'put') return cmd.key + '=' + cmd.value;
    if (cmd.op === 'get') return 'get ' + cmd.key;
    return String(cmd.op);
  }

  function longCommand(cmd) {
    if (!cmd || cmd.op === 'noop') return 'no-op';
    var who = cmd.client ? ' (' + cmd.client + (cmd.seq != null ? ' #' + cmd.seq : '') + ')' : '';
    if (cmd.op === 'put') return 'put ' + cmd.key + '=' + cmd.value + who;
    if (cmd.op === 'get') return 'get ' + cmd.key + who;
    return String(cmd.op) + who;
  }

  function isTypingTarget(target) {
    if (!target || !target.closest) return false;
    if (target.isContentEditable) return true;
    var field = target.closest('input, textarea, select');
    if (!field) return false;
    if (field.tagName !== 'INPUT') return true;
    return !/^(range|checkbox|radio|button|submit|reset)$/i.test(field.type);
  }

  // ------------------------------------------------------------------ config
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
      kind: cfg.kind || data.kind || 'raft',
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

  LabModel.prototype.node = function (id) {
    var nodes = (this.view && this.view.nodes) || [];
    for (var i = 0; i < nodes.length; i++) if (nodes[i].id === id) return nodes[i];
    return null;
  };

  // ----------------------------------------------------------------- the ring
  function Ring(svgEl, handlers) {
    this.svg = svgEl;
    this.layers = {
      partitions: $('layer-partitions'),
      links: $('layer-links'),
      clients: $('layer-clients'),
      nodes: $('layer-nodes'),
      messages: $('layer-messages'),
    };
    this.handlers = handlers;
    this.nodes = new Map(); // id -> {g, parts..., x, y}
    this.clients = new Map(); // id -> {x, y}
    this.messages = new Map(); // message id -> {g, msg, geometry}
    this.nodeKey = '';
    this.clientKey = '';
    this.partitionKey = '';
    this.pausedText = null;
  }

  Ring.prototype.position = function (id) {
    var n = this.nodes.get(id);
    if (n) return { x: n.x, y: n.y, r: n.r + 5 };
    var c = this.clients.get(id);
    if (c) return { x: c.x, y: c.y, r: 0 };
    return null;
  };

  Ring.prototype.layout = function (view) {
    var ids = (view.nodes || []).map(function (n) { return n.id; });
    var key = ids.join(',');
    if (key === this.nodeKey) return false;
    this.nodeKey = key;
    var layer = this.layers.nodes;
    var self = this;
    this.nodes.forEach(function (n) { n.g.remove(); });
    this.nodes.clear();
    this.svg.setAttribute('data-density', ids.length > 7 ? 'dense' : ids.length > 5 ? 'medium' : 'roomy');
    ids.forEach(function (id, i) {
      var angle = -Math.PI / 2 + (2 * Math.PI * i) / ids.length;
      var x = RING.cx + RING.r * Math.cos(angle);
      var y = RING.cy + RING.r * Math.sin(angle);
      self.nodes.set(id, self.buildNode(id, x, y, layer, ids.length));
    });
    return true;
  };

  Ring.prototype.buildNode = function (id, x, y, layer, count) {
    var R = nodeRadius(count);
    var timerC = 2 * Math.PI * (R + 7);
    var g = svg('g', {
      class: 'node', 'data-node-id': id, 'data-role': 'follower', 'data-alive': 'true',
      tabindex: '0', role: 'button', 'aria-haspopup': 'dialog', 'aria-label': id,
      transform: 'translate(' + x.toFixed(1) + ' ' + y.toFixed(1) + ')',
    }, layer);
    var halo = svg('circle', { class: 'node-halo', r: R + 21 }, g);
    svg('circle', { class: 'node-focus', r: R + 14 }, g);
    svg('circle', { class: 'node-timer-track', r: R + 7 }, g);
    var timer = svg('circle', { class: 'node-timer', r: R + 7, transform: 'rotate(-90)', 'stroke-dasharray': '0 ' + timerC }, g);
    var body = svg('circle', { class: 'node-body role-follower', r: R }, g);
    var k = Math.round(R * 0.48);
    var down = svg('path', { class: 'node-down-mark', d: 'M-' + k + ' -' + k + ' L' + k + ' ' + k + ' M' + k + ' -' + k + ' L-' + k + ' ' + k }, g);
    var name = svg('text', { class: 'node-name', y: -2, 'text-anchor': 'middle' }, g);
    name.textContent = id;
    var term = svg('text', { class: 'node-term', y: 27, 'text-anchor': 'middle' }, g);
    var roleLabel = svg('text', { class: 'node-role-label', y: R + 36, 'text-anchor': 'middle' }, g);
    var pips = svg('g', { class: 'node-pips' }, g);
    for (var i = 0; i < count; i++) {
      var a = -Math.PI / 2 + (i - (count - 1) / 2) * (count > 7 ? 0.24 : 0.26);
      svg('circle', { class: 'pip', r: 6.5, cx: ((R + 20) * Math.cos(a)).toFixed(1), cy: ((R + 20) * Math.sin(a)).toFixed(1) }, pips);
    }
    var badge = svg('g', { class: 'node-group-badge', transform: 'translate(' + (R * 0.8).toFixed(1) + ' ' + (-R * 0.8).toFixed(1) + ')' }, g);
    svg('circle', { r: 15 }, badge);
    var badgeText = svg('text', { y: 6, 'text-anchor': 'middle' }, badge);
    var handlers = this.handlers;
    g.addEventListener('click', function () { handlers.activate(id, g); });
    g.addEventListener('keydown', function (event) { handlers.keydown(event, id, g); });
    return {
      id: id, g: g, x: x, y: y, r: R, timerC: timerC, halo: halo, timer: timer, body: body, down: down, term: term,
      roleLabel: roleLabel, pips: pips, badge: badge, badgeText: badgeText, timerFrac: -1,
    };
  };

  Ring.prototype.layoutClients = function (view) {
    var ids = view.clients || [];
    var key = ids.join(',');
    if (key === this.clientKey) return;
    this.clientKey = key;
    var layer = this.layers.clients;
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    this.clients.clear();
    if (!ids.length) return;
    var rowH = Math.min(52, 420 / ids.length);
    var height = 52 + ids.length * rowH;
    var top = RING.cy - height / 2;
    svg('rect', { class: 'client-box', x: 14, y: top, width: 128, height: height, rx: 12 }, layer);
    var label = svg('text', { class: 'client-box-label', x: 78, y: top + 32, 'text-anchor': 'middle' }, layer);
    label.textContent = 'clients';
    var self = this;
    ids.forEach(function (id, i) {
      var cy = top + 52 + rowH * i + rowH / 2 - 4;
      svg('rect', { class: 'client', x: 34, y: cy - rowH / 2 + 5, width: 88, height: rowH - 10, rx: 8 }, layer);
      var t = svg('text', { class: 'client-name', x: 78, y: cy + 7, 'text-anchor': 'middle' }, layer);
      t.textContent = id;
      self.clients.set(id, { x: 122, y: cy });
    });
  };

  Ring.prototype.updateNodes = function (view) {
    var self = this;
    var size = (view.nodes || []).length;
    (view.nodes || []).forEach(function (n) {
      var d = self.nodes.get(n.id);
      if (!d) return;
      var role = n.alive ? n.role : 'down';
      setAttr(d.g, 'data-role', role);
      setAttr(d.g, 'data-alive', n.alive ? 'true' : 'false');
      setAttr(d.g, 'data-term', n.term);
      setAttr(d.g, 'aria-label', n.id + ', ' + role + ', term ' + n.term);
      var extra = [];
      if (n.alive && n.role === 'candidate') extra.push((n.votes || []).length + ' of ' + size + ' votes');
      if (n.voted_for) extra.push('voted for ' + n.voted_for);
      extra.push('commit index ' + n.commit_index);
      setAttr(d.g, 'aria-description', extra.join(', '));
      setAttr(d.body, 'class', 'node-body role-' + role);
      setText(d.term, 'term ' + n.term);
      setText(d.roleLabel, role);
      var votes = n.alive && n.role === 'candidate' ? n.votes || [] : null;
      d.pips.style.display = votes ? '' : 'none';
      if (votes) {
        var pips = d.pips.children;
        for (var i = 0; i < pips.length; i++) setAttr(pips[i], 'class', i < votes.length ? 'pip pip-yes' : 'pip');
      }
      d.node = n;
    });
  };

  /** Convex hull (monotone chain) of points {x, y}. */
  function hull(points) {
    var pts = points.slice().sort(function (a, b) { return a.x - b.x || a.y - b.y; });
    if (pts.length < 3) return pts;
    var cross = function (o, a, b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); };
    var lower = [], upper = [];
    pts.forEach(function (p) {
      while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop();
      lower.push(p);
    });
    for (var i = pts.length - 1; i >= 0; i--) {
      var p = pts[i];
      while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop();
      upper.push(p);
    }
    upper.pop(); lower.pop();
    return lower.concat(upper);
  }

  Ring.prototype.updateNetwork = function (view) {
    var net = view.network || {};
    var groups = net.partition || [];
    var cuts = net.cuts || [];
    var key = JSON.stringify([groups, cuts, this.nodeKey]);
    if (key === this.partitionKey) return;
    this.partitionKey = key;
    var self = this;
    var layer = this.layers.partitions;
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    var groupOf = {};
    groups.forEach(function (group, gi) {
      group.forEach(function (id) { groupOf[id] = gi; });
      var pts = group.map(function (id) { return self.nodes.get(id); }).filter(Boolean);
      if (!pts.length) return;
      var shape = hull(pts);
      var blob = svg('g', { class: 'part-blob part-' + (gi % 4) }, layer);
      var width = 2 * (pts[0].r + 30);
      if (shape.length === 1) {
        svg('circle', { cx: shape[0].x, cy: shape[0].y, r: width / 2 }, blob);
      } else {
        var d = shape.map(function (p, i) { return (i ? 'L' : 'M') + p.x.toFixed(1) + ' ' + p.y.toFixed(1); }).join(' ') + ' Z';
        svg('path', { d: d, 'stroke-width': width }, blob);
      }
    });
    this.nodes.forEach(function (d, id) {
      var gi = groupOf[id];
      var inGroup = gi != null;
      setAttr(d.halo, 'class', inGroup ? 'node-halo part-' + (gi % 4) : 'node-halo');
      d.badge.style.display = inGroup ? '' : 'none';
      setAttr(d.badge, 'class', 'node-group-badge part-' + ((inGroup ? gi : 0) % 4));
      setText(d.badgeText, inGroup ? String.fromCharCode(65 + gi) : '');
      setAttr(d.g, 'data-group', inGroup ? String.fromCharCode(65 + gi) : '');
    });
    var links = this.layers.links;
    while (links.firstChild) links.removeChild(links.firstChild);
    cuts.forEach(function (pair) {
      var a = self.nodes.get(pair[0]), b = self.nodes.get(pair[1]);
      if (!a || !b) return;
      svg('line', { class: 'cut-line', x1: a.x, y1: a.y, x2: b.x, y2: b.y }, links);
      var mx = a.x + (b.x - a.x) * 0.6, my = a.y + (b.y - a.y) * 0.6;
      svg('path', { class: 'cut-mark', d: 'M' + (mx - 9) + ' ' + (my - 9) + ' L' + (mx + 9) + ' ' + (my + 9) + ' M' + (mx + 9) + ' ' + (my - 9) + ' L' + (mx - 9) + ' ' + (my + 9) }, links);
    });
  };

  // ---- messages
  var CHECK = 'M-7 0 L-2.5 6 L7 -6';
  var CROSS = 'M-6 -6 L6 6 M6 -6 L-6 6';

  function buildMessage(msg, layer) {
    var g = svg('g', { class: 'msg msg-type-' + msg.type, 'data-msg-id': msg.id }, layer);
    var t = msg.type;
    var mark = null;
    if (t === 'RequestVote') {
      svg('circle', { class: 'msg-shape msg-vote msg-filled', r: 13 }, g);
    } else if (t === 'RequestVoteReply') {
      svg('circle', { class: 'msg-shape msg-vote msg-reply', r: 13 }, g);
      mark = msg.granted;
    } else if (t === 'AppendEntries') {
      var filled = msg.entries > 0;
      svg('rect', { class: 'msg-shape msg-ae ' + (filled ? 'msg-filled' : 'msg-hollow'), x: -13, y: -13, width: 26, height: 26 }, g);
      if (msg.entries > 1) {
        var n = svg('text', { class: 'msg-count', y: 6, 'text-anchor': 'middle' }, g);
        n.textContent = msg.entries > 9 ? '9+' : String(msg.entries);
      }
    } else if (t === 'AppendEntriesReply') {
      svg('rect', { class: 'msg-shape msg-ae msg-reply', x: -13, y: -13, width: 26, height: 26 }, g);
      mark = msg.success;
    } else if (t === 'ClientRequest') {
      svg('path', { class: 'msg-shape msg-client msg-filled', d: 'M0 -17 L17 0 L0 17 L-17 0 Z' }, g);
    } else if (t === 'ClientReply') {
      svg('path', { class: 'msg-shape msg-client msg-reply', d: 'M0 -17 L17 0 L0 17 L-17 0 Z' }, g);
      mark = msg.ok;
    } else {
      svg('circle', { class: 'msg-shape msg-other', r: 8 }, g);
    }
    if (mark != null) svg('path', { class: mark ? 'msg-mark' : 'msg-mark msg-mark-no', d: mark ? CHECK : CROSS }, g);
    var lostX = null;
    if (msg.lost) lostX = svg('path', { class: 'msg-lost-x', d: 'M-15 -15 L15 15 M15 -15 L-15 15' }, g);
    return { g: g, lostX: lostX };
  }

  Ring.prototype.syncMessages = function (view) {
    var seen = new Set();
    var layer = this.layers.messages;
    var self = this;
    (view.messages || []).forEach(function (msg) {
      seen.add(msg.id);
      var entry = self.messages.get(msg.id);
      if (!entry) {
        var built = buildMessage(msg, layer);
        entry = { g: built.g, lostX: built.lostX, msg: msg, shown: true };
        self.messages.set(msg.id, entry);
      }
      entry.msg = msg;
      entry.geo = self.geometry(msg);
    });
    this.messages.forEach(function (entry, id) {
      if (!seen.has(id)) { entry.g.remove(); self.messages.delete(id); }
    });
  };

  Ring.prototype.clearMessages = function () {
    this.messages.forEach(function (entry) { entry.g.remove(); });
    this.messages.clear();
  };

  Ring.prototype.geometry = function (msg) {
    var a = this.position(msg.from), b = this.position(msg.to);
    if (!a || !b) return null;
    var dx = b.x - a.x, dy = b.y - a.y;
    var len = Math.hypot(dx, dy) || 1;
    var ux = dx / len, uy = dy / len;
    var nx = -uy * LANE, ny = ux * LANE;
    return {
      x0: a.x + ux * a.r + nx, y0: a.y + uy * a.r + ny,
      x1: b.x - ux * b.r + nx, y1: b.y - uy * b.r + ny,
    };
  };

  Ring.prototype.drawMessages = function (now) {
    this.messages.forEach(function (entry) {
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

  Ring.prototype.drawTimers = function (now) {
    this.nodes.forEach(function (d) {
      var n = d.node;
      var frac = -1;
      if (n && n.alive && n.election_deadline_ms != null && n.election_timeout_ms > 0) {
        var start = n.election_deadline_ms - n.election_timeout_ms;
        frac = Math.max(0, Math.min(1, (now - start) / n.election_timeout_ms));
      }
      if (Math.abs(frac - d.timerFrac) < 0.002) return;
      d.timerFrac = frac;
      if (frac < 0) {
        d.timer.style.display = 'none';
      } else {
        d.timer.style.display = '';
        d.timer.setAttribute('stroke-dasharray', (frac * d.timerC).toFixed(1) + ' ' + d.timerC.toFixed(1));
        d.timer.classList.toggle('is-late', frac > 0.8);
      }
    });
  };

  // -------------------------------------------------------------------- page
  function Page(cfg) {
    this.cfg = cfg;
    this.role = cfg.role === 'owner' ? 'owner' : 'viewer';
    this.model = new LabModel();
    this.lab = $('lab');
    this.lastEventSeq = 0;
    this.keys = {};
    this.touched = {};
    this.dirty = {};
    this.menuNode = null;
    this.menuReturn = null;
    this.errorTimer = null;
    this.statusTimer = null;
    var self = this;
    this.ring = new Ring($('ring'), {
      activate: function (id, g) { self.openMenu(id, g); },
      keydown: function (event, id, g) { self.onNodeKey(event, id, g); },
    });
    this.socket = new window.LabSocket(cfg.ws_path, { statusEl: $('conn-status') });
  }

  Page.prototype.start = function () {
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
      setAttr(self.lab, 'data-connection', s.state);
      $('btn-reconnect').hidden = s.state !== 'reconnecting';
      if (!self.model.frame) {
        setText($('ring-placeholder'), s.state === 'closed' ? 'Not connected: ' + (s.reason || 'closed') : s.state === 'reconnecting' ? 'Waiting for the server…' : 'Connecting to the simulation…');
      }
    });
    if (this.cfg.ws_path) {
      sock.connect();
    } else {
      sock._setState('closed', 'This page has no simulation to connect to.');
    }
    var loop = function () {
      self.tick();
      window.requestAnimationFrame(loop);
    };
    window.requestAnimationFrame(loop);
  };

  Page.prototype.applyRole = function (role) {
    this.role = role === 'owner' ? 'owner' : 'viewer';
    var viewer = this.role === 'viewer';
    setAttr(this.lab, 'data-role', this.role);
    this.lab.classList.toggle('is-viewer', viewer);
    $('readonly-note').hidden = !viewer;
    ['controls', 'network-controls', 'client-controls'].forEach(function (id) {
      var fs = $(id);
      if (fs) fs.disabled = viewer;
    });
    this.ring.nodes.forEach(function (d) {
      if (viewer) d.g.removeAttribute('aria-haspopup'); else d.g.setAttribute('aria-haspopup', 'dialog');
    });
    if (viewer) this.closeMenu(false);
  };

  // ---- frames
  Page.prototype.onFrame = function (frame) {
    var at = performance.now();
    var newEpoch = this.model.accept(frame, at) || this.fresh;
    var view = this.model.view;
    this.fresh = false;
    if (newEpoch) {
      this.ring.clearMessages();
      this.resetNarration();
      this.keys = {};
    }
    setAttr(this.lab, 'data-frame-seq', frame.seq);
    setAttr(this.lab, 'data-epoch', frame.epoch);
    setAttr(this.lab, 'data-paused', frame.paused ? 'true' : 'false');
    $('ring-placeholder').style.display = 'none';
    var relaid = this.ring.layout(view);
    if (relaid) {
      this.closeMenu(false);
      this.applyRole(this.role);
      this.ring.partitionKey = '';
    }
    this.ring.layoutClients(view);
    this.ring.updateNodes(view);
    this.ring.updateNetwork(view);
    this.ring.syncMessages(view);
    this.renderFacts(frame, view);
    this.renderInvariants(view);
    this.renderNarration(view);
    this.renderLogs(view);
    this.renderHistory(view);
    this.renderNetwork(view);
    this.renderClientSelect(view);
    this.renderPartitionPicker(view, relaid);
    this.renderSummary(view);
    if (this.menuNode) this.updateMenu();
  };

  Page.prototype.tick = function () {
    if (!this.model.frame) return;
    var now = this.model.now(performance.now());
    this.ring.drawMessages(now);
    this.ring.drawTimers(now);
    setText($('vtime'), fmtTime(now));
  };

  Page.prototype.changed = function (name, value) {
    var key = typeof value === 'string' ? value : JSON.stringify(value);
    if (this.keys[name] === key) return false;
    this.keys[name] = key;
    return true;
  };

  Page.prototype.touching = function (id) {
    var el = $(id);
    return document.activeElement === el && Date.now() - (this.touched[id] || 0) < INTERACT_MS;
  };

  Page.prototype.renderFacts = function (frame, view) {
    setText($('seed-value'), view.seed != null ? view.seed : this.cfg.seed != null ? this.cfg.seed : '–');
    setText($('speed-value'), speedLabel(frame.speed) + (frame.paused ? ' (paused)' : ''));
    setText($('leader-value'), view.leader || 'none');
    var pause = $('btn-pause');
    setText(pause, frame.paused ? 'Resume' : 'Pause');
    setAttr(pause, 'data-paused', frame.paused ? 'true' : 'false');
    var slider = $('speed');
    if (!this.touching('speed') && frame.speed > 0) {
      var v = Math.log10(frame.speed);
      if (Math.abs(parseFloat(slider.value) - v) > 0.049) slider.value = String(v);
      this.showSpeed(frame.speed);
    }
  };

  Page.prototype.showSpeed = function (speed) {
    var label = speedLabel(speed);
    setText($('speed-label'), label);
    setAttr($('speed'), 'aria-valuetext', label);
  };

  Page.prototype.renderSummary = function (view) {
    var nodes = view.nodes || [];
    var down = nodes.filter(function (n) { return !n.alive; }).map(function (n) { return n.id; });
    var text = nodes.length + ' nodes. ' + (view.leader ? 'Leader: ' + view.leader + '. ' : 'No leader. ') +
      (down.length ? 'Down: ' + down.join(', ') + '. ' : '') +
      ((view.network && view.network.partition && view.network.partition.length) ? 'The network is partitioned.' : '');
    setText($('ring-summary'), text);
  };

  Page.prototype.renderInvariants = function (view) {
    var items = view.invariants || [];
    if (!this.changed('invariants', items)) return;
    var list = $('invariants');
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
    var panel = list.closest('.panel');
    if (panel) panel.classList.toggle('has-violation', broken > 0);
  };

  Page.prototype.resetNarration = function () {
    var list = $('narration');
    while (list.firstChild) list.removeChild(list.firstChild);
    this.lastEventSeq = 0;
  };

  Page.prototype.renderNarration = function (view) {
    var events = view.events || [];
    var list = $('narration');
    var fresh = events.filter(function (e) { return e.seq > this.lastEventSeq; }, this);
    if (!fresh.length) return;
    var hideClient = $('hide-client').checked;
    var bulk = fresh.length > 5;
    if (bulk) list.setAttribute('aria-busy', 'true');
    fresh.forEach(function (e) {
      var li = html('li', { class: 'event event-' + e.kind, 'data-kind': e.kind, 'data-seq': e.seq });
      if (e.node) li.setAttribute('data-node', e.node);
      li.appendChild(html('span', { class: 'event-time' }, fmtShortTime(e.at_ms)));
      li.appendChild(html('span', { class: 'event-kind' }, e.kind));
      li.appendChild(html('span', { class: 'event-text' }, e.text));
      if (hideClient && e.kind === 'client') li.hidden = true;
      list.insertBefore(li, list.firstChild);
    });
    this.lastEventSeq = fresh[fresh.length - 1].seq;
    while (list.children.length > MAX_NARRATION) list.removeChild(list.lastChild);
    if (bulk) list.setAttribute('aria-busy', 'false');
  };

  Page.prototype.applyNarrationFilter = function () {
    var hide = $('hide-client').checked;
    $('narration').classList.toggle('hide-client', hide);
    Array.prototype.forEach.call($('narration').querySelectorAll('li[data-kind="client"]'), function (li) { li.hidden = hide; });
  };

  Page.prototype.renderLogs = function (view) {
    var nodes = view.nodes || [];
    var last = 0;
    nodes.forEach(function (n) { last = Math.max(last, (n.log_offset || 0) + n.log.length); });
    var first = Math.max(1, last - LOG_COLUMNS + 1);
    var lastCol = Math.max(last, first);
    // Only what the table shows decides whether it is rebuilt.
    var sig = nodes.map(function (n) {
      var offset = n.log_offset || 0;
      var from = Math.max(0, first - offset - 1);
      return [n.id, n.alive, n.role, n.commit_index, offset, from, n.log.slice(from)];
    });
    if (!this.changed('logs', sig)) return;
    var table = $('log-table');
    var thead = table.tHead;
    var tbody = table.tBodies[0];
    var headRow = html('tr');
    headRow.appendChild(html('th', { scope: 'col', class: 'log-node-col' }, 'Node'));
    for (var i = first; i <= lastCol; i++) headRow.appendChild(html('th', { scope: 'col', class: 'log-index' }, String(i)));
    var rows = document.createDocumentFragment();
    nodes.forEach(function (n) {
      var role = n.alive ? n.role : 'down';
      var tr = html('tr', { 'data-log-node': n.id, class: 'log-row role-' + role });
      var th = html('th', { scope: 'row', class: 'log-node' });
      th.appendChild(html('span', { class: 'log-node-id' }, n.id));
      th.appendChild(document.createTextNode(' '));
      th.appendChild(html('span', { class: 'log-node-role' }, role));
      th.appendChild(document.createTextNode(', '));
      th.appendChild(html('span', { class: 'log-node-commit' }, 'commit ' + n.commit_index));
      tr.appendChild(th);
      var offset = n.log_offset || 0;
      var idx = first;
      if (offset >= first) {
        // the server trimmed this node's older entries: one wide cell stands for them
        var upto = Math.min(offset, lastCol);
        var gap = html('td', { class: 'log-cell log-trimmed', colspan: upto - first + 1 }, '… entries up to ' + upto + ' not shown');
        tr.appendChild(gap);
        idx = upto + 1;
      }
      for (; idx <= lastCol; idx++) {
        var td = html('td', { class: 'log-cell', 'data-index': idx });
        var at = idx - offset - 1;
        if (at < n.log.length) {
          var entry = n.log[at];
          var committed = idx <= n.commit_index;
          td.className += ' log-entry term-' + (entry.term % 8) + (committed ? ' committed' : ' uncommitted');
          if (idx === n.commit_index) td.className += ' commit-edge';
          td.setAttribute('data-term', entry.term);
          td.appendChild(html('span', { class: 'log-cmd' }, shortCommand(entry.command)));
          td.appendChild(html('span', { class: 'log-term', 'aria-hidden': 'true' }, String(entry.term)));
          td.title = 'index ' + idx + ', term ' + entry.term + ': ' + longCommand(entry.command) + (committed ? ', committed' : ', not committed');
          td.setAttribute('aria-label', td.title);
        } else {
          td.className += ' log-empty';
          if (idx === n.commit_index) td.className += ' commit-edge';
        }
        tr.appendChild(td);
      }
      rows.appendChild(tr);
    });
    var scroller = table.parentElement;
    var atEnd = !this.logsScrolled || scroller.scrollLeft + scroller.clientWidth >= scroller.scrollWidth - 8;
    thead.replaceChildren(headRow);
    tbody.replaceChildren(rows);
    // keep the newest indexes in sight unless the learner scrolled back on purpose
    if (atEnd) scroller.scrollLeft = scroller.scrollWidth;
    this.logsScrolled = true;
    if (!last) {
      var empty = html('tr');
      empty.appendChild(html('td', { colspan: 2, class: 'hint' }, 'Every log is empty so far.'));
      tbody.appendChild(empty);
    }
  };

  Page.prototype.renderHistory = function (view) {
    var history = view.history || [];
    if (!this.changed('history', history)) return;
    var tbody = $('history').tBodies[0];
    var rows = document.createDocumentFragment();
    if (!history.length) {
      var empty = html('tr', { class: 'history-empty' });
      empty.appendChild(html('td', { colspan: 7 }, 'No client operations yet.'));
      rows.appendChild(empty);
    }
    for (var i = history.length - 1; i >= 0; i--) {
      var r = history[i];
      var status = r.status || 'pending';
      var tr = html('tr', { class: 'op op-' + status, 'data-op-id': r.id, 'data-status': status });
      tr.appendChild(html('td', null, String(r.id)));
      tr.appendChild(html('td', null, r.client));
      tr.appendChild(html('td', { class: 'op-what' }, r.op === 'put' ? 'put ' + r.key + '=' + r.value : r.op + ' ' + r.key));
      tr.appendChild(html('td', { class: 'num' }, fmtShortTime(r.invoke)));
      tr.appendChild(html('td', { class: 'num' }, r.complete == null ? '…' : fmtShortTime(r.complete)));
      var note = status;
      if (status === 'pending' && r.node) note += ' (at ' + r.node + (r.attempts > 1 ? ', try ' + r.attempts : '') + ')';
      if (status === 'ok' && r.index != null) note += ' (entry ' + r.index + ')';
      tr.appendChild(html('td', { class: 'op-status' }, note));
      var result = '';
      if (r.op === 'get' && status === 'ok') result = r.result == null ? '(no value)' : String(r.result);
      else if (status === 'fail' && r.error) result = String(r.error);
      tr.appendChild(html('td', { class: 'op-result' }, result));
      rows.appendChild(tr);
    }
    tbody.replaceChildren(rows);
  };

  Page.prototype.renderNetwork = function (view) {
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
    var state = $('network-state');
    setText(state, parts.join(' · '));
    setAttr(state, 'data-partitioned', groups.length ? 'true' : 'false');
    if (net.counts) {
      setAttr(state, 'title', 'sent ' + net.counts.sent + ', delivered ' + net.counts.delivered + ', dropped ' + net.counts.dropped);
    }
    var drop = $('drop-rate');
    if (!this.touching('drop-rate') && !this.dirty['drop-rate']) {
      var pct = Math.round((net.drop_rate || 0) * 100);
      if (String(pct) !== drop.value) drop.value = String(pct);
      this.showDrop(pct);
    }
    if (lat.length === 2) {
      var minEl = $('latency-min'), maxEl = $('latency-max');
      var editing = document.activeElement === minEl || document.activeElement === maxEl || this.dirty.latency;
      if (!editing) {
        if (minEl.value !== String(lat[0])) minEl.value = String(lat[0]);
        if (maxEl.value !== String(lat[1])) maxEl.value = String(lat[1]);
      }
    }
  };

  Page.prototype.showDrop = function (pct) {
    setText($('drop-rate-label'), pct + '%');
    setAttr($('drop-rate'), 'aria-valuetext', pct + '%');
  };

  Page.prototype.renderClientSelect = function (view) {
    var clients = view.clients || [];
    if (!clients.length || !this.changed('clients', clients)) return;
    var select = $('client-id');
    var current = select.value;
    select.replaceChildren.apply(select, clients.map(function (c) { return html('option', { value: c }, c); }));
    if (clients.indexOf(current) >= 0) select.value = current;
  };

  Page.prototype.renderPartitionPicker = function (view, force) {
    var ids = (view.nodes || []).map(function (n) { return n.id; });
    if (!this.changed('picker', ids) && !force) return;
    var picker = $('partition-picker');
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

  // ---- node menu
  Page.prototype.onNodeKey = function (event, id, g) {
    var key = event.key;
    if (key === 'Enter' || key === ' ' || key === 'Spacebar') {
      event.preventDefault();
      event.stopPropagation();
      this.openMenu(id, g);
      return;
    }
    if (key === 'ArrowRight' || key === 'ArrowDown' || key === 'ArrowLeft' || key === 'ArrowUp') {
      event.preventDefault();
      var ids = Array.from(this.ring.nodes.keys());
      var i = ids.indexOf(id);
      var step = key === 'ArrowRight' || key === 'ArrowDown' ? 1 : -1;
      var next = this.ring.nodes.get(ids[(i + step + ids.length) % ids.length]);
      if (next) next.g.focus();
    }
  };

  Page.prototype.openMenu = function (id, g) {
    if (this.role !== 'owner') return;
    var menu = $('node-menu');
    this.menuNode = id;
    this.menuReturn = g;
    menu.hidden = false;
    menu.setAttribute('data-node', id);
    this.updateMenu();
    // place the menu beside the node, inside the drawing's box
    var wrap = $('ring-wrap').getBoundingClientRect();
    var box = g.querySelector('.node-body').getBoundingClientRect();
    var mw = menu.offsetWidth, mh = menu.offsetHeight;
    var left = box.right - wrap.left + 12;
    if (left + mw > wrap.width) left = box.left - wrap.left - mw - 12;
    left = Math.max(4, Math.min(left, wrap.width - mw - 4));
    var top = box.top - wrap.top + box.height / 2 - mh / 2;
    top = Math.max(4, Math.min(top, wrap.height - mh - 4));
    menu.style.left = left + 'px';
    menu.style.top = top + 'px';
    var firstEnabled = menu.querySelector('.node-menu-buttons button:not(:disabled)') || menu.querySelector('[data-action=close]');
    if (firstEnabled) firstEnabled.focus();
  };

  Page.prototype.updateMenu = function () {
    var id = this.menuNode;
    var n = this.model.node(id);
    var menu = $('node-menu');
    var alive = n ? !!n.alive : true;
    var role = n ? (alive ? n.role : 'down') : 'unknown';
    setText($('node-menu-title'), id + ': ' + role + (n ? ', term ' + n.term : ''));
    var facts = [];
    if (n) {
      facts.push('voted for ' + (n.voted_for || 'nobody'));
      facts.push('commit index ' + n.commit_index);
      facts.push(((n.log_offset || 0) + n.log.length) + ' log entries');
      if (n.leader_id && n.role !== 'leader') facts.push('thinks the leader is ' + n.leader_id);
    }
    setText($('node-menu-facts'), facts.join(' · '));
    var labels = {
      crash: 'Crash ' + id,
      restart: 'Restart ' + id,
      timeout: 'Force timeout ' + id,
      crash_lose_disk: 'Crash ' + id + ' and lose its disk',
    };
    var possible = { crash: alive, restart: !alive, timeout: alive, crash_lose_disk: true };
    Array.prototype.forEach.call(menu.querySelectorAll('.node-menu-buttons button'), function (b) {
      var action = b.getAttribute('data-action');
      setText(b, labels[action]);
      var disable = !possible[action];
      if (b.disabled !== disable) {
        var hadFocus = document.activeElement === b;
        b.disabled = disable;
        if (hadFocus && disable) {
          var other = menu.querySelector('.node-menu-buttons button:not(:disabled)');
          if (other) other.focus();
        }
      }
    });
  };

  Page.prototype.closeMenu = function (restoreFocus) {
    var menu = $('node-menu');
    if (menu.hidden) return;
    menu.hidden = true;
    var ret = this.menuReturn;
    this.menuNode = null;
    this.menuReturn = null;
    if (restoreFocus && ret && document.contains(ret)) ret.focus();
  };

  // ---- sending
  Page.prototype.send = function (promise) {
    var self = this;
    return promise.then(function (result) { self.clearError(); return result; }, function (err) {
      if (err && err.local) self.showError(err.message);
      throw err;
    }).catch(function () { return undefined; });
  };

  Page.prototype.command = function (cmd) {
    return this.send(this.socket.command(cmd));
  };

  Page.prototype.control = function (action, extra) {
    return this.send(this.socket.control(action, extra));
  };

  Page.prototype.showError = function (text) {
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

  Page.prototype.clearError = function () {
    var box = $('lab-error');
    if (!box.classList.contains('has-error')) return;
    if (box.contains(document.activeElement)) $('btn-pause').focus();
    box.replaceChildren();
    box.classList.remove('has-error');
    clearTimeout(this.errorTimer);
  };

  Page.prototype.showStatus = function (level, text) {
    var box = $('lab-status');
    box.textContent = text || '';
    box.className = 'lab-status level-' + (level === 'warn' ? 'warn' : 'info') + (text ? ' has-status' : '');
    clearTimeout(this.statusTimer);
    if (level !== 'warn') {
      this.statusTimer = setTimeout(function () { box.textContent = ''; box.className = 'lab-status'; }, 20000);
    }
  };

  Page.prototype.togglePause = function () {
    var f = this.model.frame;
    this.control(f && f.paused ? 'resume' : 'pause');
  };

  // ---- wiring
  Page.prototype.wireControls = function () {
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
      self.control('speed', { speed: value });
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

    var drop = $('drop-rate');
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

    ['latency-min', 'latency-max'].forEach(function (id) {
      $(id).addEventListener('input', function () { self.dirty.latency = true; });
    });
    $('latency-form').addEventListener('submit', function (event) {
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

    $('btn-partition').addEventListener('click', function () {
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
    $('btn-isolate-leader').addEventListener('click', function () {
      var view = self.model.view;
      var leader = view && view.leader;
      if (!leader) {
        self.showError('There is no leader to isolate right now.');
        return;
      }
      var others = (view.nodes || []).map(function (n) { return n.id; }).filter(function (id) { return id !== leader; });
      self.command({ op: 'partition', groups: [others, [leader]] });
    });

    function clientRequest(op) {
      var key = $('client-key').value.trim();
      var client = $('client-id').value || 'c1';
      if (!key) {
        self.showError('Type a key first, for example x.');
        $('client-key').focus();
        return;
      }
      if (op === 'get') {
        self.command({ op: 'get', key: key, client: client });
        return;
      }
      var raw = $('client-value').value.trim();
      if (raw === '') {
        self.showError('Type a value to put, for example 3.');
        $('client-value').focus();
        return;
      }
      var value = /^-?\d{1,15}$/.test(raw) ? Number(raw) : raw;
      self.command({ op: 'put', key: key, value: value, client: client });
    }
    $('client-form').addEventListener('submit', function (event) { event.preventDefault(); clientRequest('put'); });
    $('btn-get').addEventListener('click', function () { clientRequest('get'); });

    var hide = $('hide-client');
    try { hide.checked = window.localStorage.getItem('patternsLab.hideClient') === '1'; } catch (e) { /* ignore */ }
    this.applyNarrationFilter();
    hide.addEventListener('change', function () {
      try { window.localStorage.setItem('patternsLab.hideClient', hide.checked ? '1' : '0'); } catch (e) { /* ignore */ }
      self.applyNarrationFilter();
    });

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
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, fallback);
        else fallback();
      });
    }

    var menu = $('node-menu');
    menu.addEventListener('click', function (event) {
      var button = event.target.closest('button[data-action]');
      if (!button || button.disabled) return;
      var action = button.getAttribute('data-action');
      var node = self.menuNode;
      self.closeMenu(true);
      if (action !== 'close' && node) self.command({ op: action, node: node });
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
      if (event.target.closest && event.target.closest('.node')) return;
      self.closeMenu(false);
    });

    document.addEventListener('keydown', function (event) { self.onShortcut(event); });
  };

  /** Space: pause or resume; ".": one step (presenter remotes send "."). Not while typing. */
  Page.prototype.onShortcut = function (event) {
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
      if (target && target.closest && target.closest('button, a[href], summary, input, select, .node, [role=button]')) {
        var range = target.closest('input[type=range]');
        if (!range) return;
      }
      event.preventDefault();
      this.togglePause();
    }
  };

  // ------------------------------------------------------------------- start
  function boot() {
    if (!$('lab') || !window.LabSocket) return;
    var page = new Page(readConfig());
    window.raftLab = page; // for the console and for browser tests: raftLab.model.frame
    page.start();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
