/* The sharding lab page, on top of the lab kit.
 *
 * Draws the placement (the hash ring with each node's tokens, or the ranges,
 * or "hash mod N"), the nodes around it with their key counts, requests and
 * key transfers in flight, the "moved N of M keys" line of the last placement
 * change, rebalance progress, keys and load per node, the load chart, the
 * client history with stale reads marked, and the placement controls.
 */
(function () {
  'use strict';

  var K = window.LabKit;
  var U = K.util;
  var $ = U.$, svg = U.svg, html = U.html, setAttr = U.setAttr, setText = U.setText;

  var C = { x: 450, y: 330 };
  var ORBIT = 268; // where the nodes sit
  var RING_R = 168; // the hash ring
  var RING_W = 26;
  var HOT_RATIO = 2; // a node with twice the mean load (and some load) is drawn hot

  var STRATEGY = {
    consistent: 'Consistent hashing',
    modulo: 'hash(key) mod N',
    range: 'Key ranges',
  };

  var colourOf = U.nodeColour;

  function angleOf(fraction) {
    return -Math.PI / 2 + 2 * Math.PI * fraction;
  }

  function polar(r, fraction) {
    var a = angleOf(fraction);
    return { x: C.x + r * Math.cos(a), y: C.y + r * Math.sin(a) };
  }

  function arcPath(r, from, to) {
    if (to - from >= 0.9999) {
      var top = polar(r, 0), bottom = polar(r, 0.5);
      return 'M' + top.x + ' ' + top.y + ' A' + r + ' ' + r + ' 0 1 1 ' + bottom.x + ' ' + bottom.y +
        ' A' + r + ' ' + r + ' 0 1 1 ' + top.x + ' ' + top.y;
    }
    var a = polar(r, from), b = polar(r, to);
    var large = to - from > 0.5 ? 1 : 0;
    return 'M' + a.x.toFixed(1) + ' ' + a.y.toFixed(1) + ' A' + r + ' ' + r + ' 0 ' + large + ' 1 ' + b.x.toFixed(1) + ' ' + b.y.toFixed(1);
  }

  function pct(fraction, digits) {
    return U.fmtPct(fraction, digits);
  }

  function rps(v) {
    if (v == null || !isFinite(v)) return '–';
    return (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10) + ' req/s';
  }

  function loadOf(n) {
    return n.load_rps || 0;
  }

  /** Nodes drawn hot: overloaded (saturated, shedding), or carrying more than twice the mean load. */
  function hotNodes(nodes) {
    var alive = nodes.filter(function (n) { return n.alive; });
    if (!alive.length) return {};
    var mean = alive.reduce(function (s, n) { return s + loadOf(n); }, 0) / alive.length;
    var hot = {};
    alive.forEach(function (n) { if (n.saturated || (loadOf(n) > HOT_RATIO * mean && loadOf(n) >= 50)) hot[n.id] = true; });
    return hot;
  }

  /** down | leaving (removed, still handing its keys over) | hot | up */
  function nodeState(n, hot) {
    if (!n.alive) return 'down';
    if (n.leaving || n.member === false) return 'leaving';
    return hot[n.id] ? 'hot' : 'up';
  }

  function versionText(v) {
    if (v == null) return '';
    if (Array.isArray(v)) return v[0] ? 'v' + v[0] + (v[1] ? ' (' + v[1] + ')' : '') : 'no version';
    return 'v' + v;
  }

  // ------------------------------------------------------------- the drawing
  function Drawing(lab) {
    this.lab = lab;
    this.svg = $('ring');
    this.layers = {
      partitions: $('layer-partitions'),
      tokens: $('layer-tokens'),
      center: $('layer-center'),
      nodes: $('layer-nodes'),
    };
    this.nodes = new Map();
    this.nodeKey = '';
    this.placementKey = '';
    this.partitionKey = '';
    var self = this;
    this.messages = new K.MessageLayer($('layer-messages'), {
      position: function (id) { return self.position(id); },
      build: buildMessage,
    });
  }

  Drawing.prototype.position = function (id) {
    var n = this.nodes.get(id);
    if (n) return { x: n.x, y: n.y, r: n.r + 4 };
    // clients, the router, anyone not drawn as a node: the hub in the middle
    return { x: C.x, y: C.y + 40, r: 18 };
  };

  Drawing.prototype.nodeRadius = function (count) {
    return count <= 5 ? 50 : count <= 7 ? 44 : count <= 9 ? 38 : 32;
  };

  Drawing.prototype.layout = function (view) {
    var ids = (view.nodes || []).map(function (n) { return n.id; });
    var key = ids.join(',');
    if (key === this.nodeKey) return false;
    this.nodeKey = key;
    var self = this;
    this.nodes.forEach(function (d) { d.g.remove(); });
    this.nodes.clear();
    var R = this.nodeRadius(ids.length);
    this.svg.setAttribute('data-density', ids.length > 7 ? 'dense' : ids.length > 5 ? 'medium' : 'roomy');
    ids.forEach(function (id, i) {
      var p = polar(ORBIT, i / ids.length);
      self.nodes.set(id, self.buildNode(id, p.x, p.y, R));
    });
    this.partitionKey = '';
    return true;
  };

  Drawing.prototype.buildNode = function (id, x, y, R) {
    var c = colourOf(id);
    var g = svg('g', {
      class: 'node shard-node', 'data-alive': 'true', 'data-state': 'up', 'data-colour': c, 'aria-label': id,
      transform: 'translate(' + x.toFixed(1) + ' ' + y.toFixed(1) + ')',
    }, this.layers.nodes);
    var halo = svg('circle', { class: 'node-halo', r: R + 17 }, g);
    svg('circle', { class: 'node-focus', r: R + 11 }, g);
    var hot = svg('circle', { class: 'node-hot-ring', r: R + 6 }, g);
    var body = svg('circle', { class: 'node-body shard-body fill-c-' + c, r: R, 'data-menu-anchor': '' }, g);
    var k = Math.round(R * 0.55);
    svg('path', { class: 'node-down-mark', d: 'M-' + k + ' -' + k + ' L' + k + ' ' + k + ' M' + k + ' -' + k + ' L-' + k + ' ' + k }, g);
    var name = svg('text', { class: 'node-name shard-name', y: -2, 'text-anchor': 'middle' }, g);
    name.textContent = id;
    var keys = svg('text', { class: 'node-keys', y: R * 0.52, 'text-anchor': 'middle' }, g);
    var badge = svg('g', { class: 'node-group-badge', transform: 'translate(' + (R * 0.8).toFixed(1) + ' ' + (-R * 0.8).toFixed(1) + ')' }, g);
    svg('circle', { r: 14 }, badge);
    var badgeText = svg('text', { y: 6, 'text-anchor': 'middle' }, badge);
    this.lab.bindNode(g, id);
    return { id: id, g: g, x: x, y: y, r: R, halo: halo, hot: hot, body: body, keys: keys, badge: badge, badgeText: badgeText };
  };

  Drawing.prototype.updateNodes = function (view, hot) {
    var self = this;
    (view.nodes || []).forEach(function (n) {
      var d = self.nodes.get(n.id);
      if (!d) return;
      var state = nodeState(n, hot);
      setAttr(d.g, 'data-alive', n.alive ? 'true' : 'false');
      setAttr(d.g, 'data-state', state);
      setAttr(d.g, 'data-keys', n.keys || 0);
      setAttr(d.g, 'data-load', Math.round(loadOf(n)));
      setText(d.keys, (n.keys || 0) + ' keys');
      var share = view.ring_share && view.ring_share[n.id];
      setAttr(d.g, 'aria-label', n.id + ', ' + (state === 'hot' && n.saturated ? 'overloaded' : state) + ', ' + (n.keys || 0) + ' keys, ' + rps(loadOf(n)) +
        (share != null ? ', owns ' + pct(share, 1) + ' of the ring' : ''));
    });
  };

  Drawing.prototype.updatePlacement = function (view) {
    var strategy = view.strategy || '';
    var ring = view.ring || [];
    var ranges = view.ranges || [];
    var nodeCount = (view.nodes || []).length;
    var key = JSON.stringify([strategy, ring, ranges.map(function (r) { return [r.start, r.node, r.keys]; }), nodeCount, view.vnodes,
      view.replicas, view.write_quorum, view.read_quorum]);
    if (key === this.placementKey) return;
    this.placementKey = key;
    var layer = this.layers.tokens;
    U.clear(layer);
    setAttr(this.svg, 'data-strategy', strategy);
    svg('circle', { class: 'ring-track', cx: C.x, cy: C.y, r: RING_R }, layer);
    if (strategy === 'consistent' && ring.length) {
      this.drawRing(layer, ring);
    } else if (strategy === 'range' && ranges.length) {
      this.drawRanges(layer, ranges);
    } else if (strategy === 'modulo') {
      this.drawModulo(layer, view.nodes || []);
    }
    this.drawCenter(view);
  };

  /** Each token owns the arc from the previous token up to itself (a key goes to the first token clockwise). */
  Drawing.prototype.drawRing = function (layer, ring) {
    var tokens = ring.slice().sort(function (a, b) { return a.token - b.token; });
    var arcs = svg('g', { class: 'ring-arcs' }, layer);
    for (var i = 0; i < tokens.length; i++) {
      var prev = i ? tokens[i - 1].token : tokens[tokens.length - 1].token - 1;
      var t = tokens[i];
      if (t.token - prev <= 0) continue;
      svg('path', { class: 'ring-arc stroke-c-' + colourOf(t.node), d: arcPath(RING_R, prev, t.token), 'data-node': t.node }, arcs);
    }
    var ticks = svg('g', { class: 'ring-ticks' + (tokens.length > 120 ? ' is-dense' : '') }, layer);
    tokens.forEach(function (t) {
      var a = polar(RING_R - RING_W / 2 - 5, t.token), b = polar(RING_R + RING_W / 2 + 5, t.token);
      svg('line', { class: 'ring-tick stroke-c-' + colourOf(t.node), x1: a.x.toFixed(1), y1: a.y.toFixed(1), x2: b.x.toFixed(1), y2: b.y.toFixed(1) }, ticks);
    });
    this.drawScale(layer);
  };

  Drawing.prototype.drawScale = function (layer) {
    [0, 0.5].forEach(function (f) {
      var p = polar(RING_R - RING_W / 2 - 22, f);
      var t = svg('text', { class: 'ring-scale', x: p.x.toFixed(1), y: (p.y + 7).toFixed(1), 'text-anchor': 'middle' }, layer);
      t.textContent = f === 0 ? '0 | 1' : String(f);
    });
  };

  /** Ranges split the keys in key order (not by hash): each arc's length is its share of the keys. */
  Drawing.prototype.drawRanges = function (layer, ranges) {
    var total = ranges.reduce(function (sum, r) { return sum + (r.keys || 0); }, 0);
    var count = ranges.length;
    var arcs = svg('g', { class: 'ring-arcs' }, layer);
    var from = 0;
    ranges.forEach(function (r, i) {
      var size = total ? (r.keys || 0) / total : 1 / count;
      var to = i === count - 1 ? 1 : from + Math.max(size, 0.004);
      svg('path', { class: 'ring-arc stroke-c-' + colourOf(r.node), d: arcPath(RING_R, from, Math.min(1, to)), 'data-node': r.node }, arcs);
      var a = polar(RING_R - RING_W / 2 - 5, from), b = polar(RING_R + RING_W / 2 + 5, from);
      svg('line', { class: 'ring-tick range-edge', x1: a.x.toFixed(1), y1: a.y.toFixed(1), x2: b.x.toFixed(1), y2: b.y.toFixed(1) }, layer);
      if (count <= 10) {
        var p = polar(RING_R - RING_W / 2 - 30, from);
        var label = svg('text', { class: 'ring-scale', x: p.x.toFixed(1), y: (p.y + 6).toFixed(1), 'text-anchor': 'middle' }, layer);
        label.textContent = r.start ? String(r.start).slice(0, 8) : 'start';
      }
      from = to;
    });
  };

  Drawing.prototype.drawModulo = function (layer, nodes) {
    var count = nodes.length || 1;
    var arcs = svg('g', { class: 'ring-arcs is-modulo' }, layer);
    // Not a ring: the buckets hash mod N picks from, one per node, in order.
    nodes.forEach(function (n, i) {
      svg('path', { class: 'ring-arc stroke-c-' + colourOf(n.id), d: arcPath(RING_R, i / count + 0.004, (i + 1) / count - 0.004), 'data-node': n.id }, arcs);
      var p = polar(RING_R, (i + 0.5) / count);
      var t = svg('text', { class: 'bucket-label', x: p.x.toFixed(1), y: (p.y + 7).toFixed(1), 'text-anchor': 'middle' }, layer);
      t.textContent = String(i);
    });
  };

  Drawing.prototype.drawCenter = function (view) {
    var layer = this.layers.center;
    U.clear(layer);
    var strategy = view.strategy || '';
    var n = (view.nodes || []).length;
    var title = svg('text', { class: 'center-title', x: C.x, y: C.y - 66, 'text-anchor': 'middle' }, layer);
    title.textContent = STRATEGY[strategy] || strategy || '–';
    var sub = svg('text', { class: 'center-sub', x: C.x, y: C.y - 36, 'text-anchor': 'middle' }, layer);
    if (strategy === 'consistent') sub.textContent = (view.vnodes || '?') + ' tokens per node';
    else if (strategy === 'modulo') sub.textContent = 'node = hash(key) mod ' + n;
    else if (strategy === 'range') sub.textContent = (view.ranges || []).length + ' ranges, in key order';
    var rep = svg('text', { class: 'center-sub', x: C.x, y: C.y - 10, 'text-anchor': 'middle' }, layer);
    rep.textContent = 'N = ' + (view.replicas || 1) + ' replicas, W = ' + view.write_quorum + ', R = ' + view.read_quorum;
    svg('circle', { class: 'client-hub', cx: C.x, cy: C.y + 40, r: 18 }, layer);
    var hub = svg('text', { class: 'client-hub-label', x: C.x, y: C.y + 82, 'text-anchor': 'middle' }, layer);
    hub.textContent = 'clients';
  };

  Drawing.prototype.updateNetwork = function (view) {
    var groups = (view.network && view.network.partition) || [];
    var key = JSON.stringify([groups, this.nodeKey]);
    if (key === this.partitionKey) return;
    this.partitionKey = key;
    var groupOf = {};
    groups.forEach(function (group, gi) { group.forEach(function (id) { groupOf[id] = gi; }); });
    this.nodes.forEach(function (d, id) {
      var gi = groupOf[id];
      var inGroup = gi != null;
      setAttr(d.halo, 'class', inGroup ? 'node-halo part-' + (gi % 4) : 'node-halo');
      d.badge.style.display = inGroup ? '' : 'none';
      setAttr(d.badge, 'class', 'node-group-badge part-' + ((inGroup ? gi : 0) % 4));
      setText(d.badgeText, inGroup ? String.fromCharCode(65 + gi) : '');
      setAttr(d.g, 'data-group', inGroup ? String.fromCharCode(65 + gi) : '');
    });
  };

  /** Put/Write, Get/Read/Query, Transfer/Push (keys moving), and their replies and acks. */
  function messageClass(type) {
    var t = String(type || '');
    if (/reply|ack$/i.test(t)) return 'reply';
    if (/transfer|push/i.test(t)) return 'transfer';
    if (/put|write/i.test(t)) return 'put';
    if (/get|read|query/i.test(t)) return 'get';
    return 'other';
  }

  function buildMessage(msg, g) {
    var kind = messageClass(msg.type);
    if (kind === 'transfer') {
      svg('rect', { class: 'msg-shape msg-transfer', x: -16, y: -10, width: 32, height: 20, rx: 4 }, g);
      if (msg.keys > 1) {
        var n = svg('text', { class: 'msg-count', y: 6, 'text-anchor': 'middle' }, g);
        n.textContent = msg.keys > 99 ? '99+' : String(msg.keys);
      }
    } else if (kind === 'reply') {
      svg('path', { class: 'msg-shape msg-reply-shape', d: 'M0 -13 L13 0 L0 13 L-13 0 Z' }, g);
      if (msg.ok != null) K.messageMark(g, !!msg.ok);
    } else if (kind === 'put') {
      svg('circle', { class: 'msg-shape msg-put', r: 12 }, g);
    } else if (kind === 'get') {
      svg('circle', { class: 'msg-shape msg-get', r: 12 }, g);
    } else {
      svg('circle', { class: 'msg-shape msg-other', r: 7 }, g);
    }
  }

  // ------------------------------------------------------------------ panels
  function Panels(lab) {
    this.lab = lab;
    this.loadChart = new window.LabCharts.TimeSeries($('chart-load'), {
      unit: 'req/s', yMaxAtLeast: 10, windowMs: 20000,
      format: function (v) { return rps(v); },
      tickFormat: function (v) { return String(v); },
      series: [],
    });
    this.staleChart = new window.LabCharts.TimeSeries($('chart-stale'), {
      unit: '', yMaxAtLeast: 4, windowMs: 20000, integer: true,
      format: function (v) { return String(Math.round(v)); },
      tickFormat: function (v) { return String(v); },
      series: [
        { key: 'stale', label: 'stale reads', color: 1, dash: 0, value: function (r) { return r.stale_reads; } },
      ],
    });
  }

  Panels.prototype.render = function (frame, view) {
    var hot = hotNodes(view.nodes || []);
    this.renderFacts(view);
    this.renderPlacementChange(view);
    this.renderRebalance(view);
    this.renderBalance(view);
    this.renderBars(view, hot);
    this.renderCharts(view);
    this.renderQuorum(view);
    this.renderStrategy(view);
    this.renderHotKeys(view);
    this.renderStats(view);
    this.renderHistory(view);
    this.renderClientSelect(view);
    return hot;
  };

  Panels.prototype.renderFacts = function (view) {
    setText($('strategy-value'), STRATEGY[view.strategy] || view.strategy || '–');
  };

  /** "Adding n6 moved 34 of 200 keys (17%); consistent hashing expects about 1/(N+1) = 17%." */
  Panels.prototype.renderPlacementChange = function (view) {
    var pc = view.placement_change;
    var banner = $('placement-banner');
    var line = $('placement-change');
    if (!pc || pc.total == null) {
      setAttr(banner, 'data-moved', '');
      return;
    }
    if (!this.lab.changed('placement_change', pc)) return;
    // The engine counts copies (a key has `replicas` of them): a copy moves when its node changes.
    var moved = pc.moved || 0, total = pc.total || 0;
    var frac = pc.fraction != null ? pc.fraction : total ? moved / total : 0;
    var strategy = pc.strategy || view.strategy;
    var text = (pc.reason ? pc.reason + ': ' : '') + 'moved ' + moved + ' of ' + total + ' copies (' + pct(frac, 1) + ')' +
      (pc.keys_moving != null && pc.keys ? ', ' + pc.keys_moving + ' of ' + pc.keys + ' keys changed replicas' : '') + '.';
    var expected = pc.expected_fraction;
    if (expected != null) {
      var inv = Math.round(1 / expected);
      var joined = /join/i.test(pc.reason || '');
      if (strategy === 'consistent') {
        text += ' Expected about ' + (joined ? '1/(N+1)' : '1/N') + (Math.abs(1 / inv - expected) < 0.002 ? ' = 1/' + inv : '') + ' = ' + pct(expected, 1) +
          ' for consistent hashing; hash mod N moves most.';
      } else if (strategy === 'modulo') {
        text += ' Expected about ' + pct(expected) + ': hash mod N moves most; consistent hashing would move about 1/(N+1).';
      } else {
        text += ' Expected about ' + pct(expected) + '.';
      }
    }
    setText(line, text);
    setText($('placement-basis'), pc.expected_basis ? 'Why: ' + pc.expected_basis + '.' : '');
    setAttr(banner, 'data-moved', moved);
    setAttr(banner, 'data-total', total);
    setAttr(banner, 'data-expected', expected == null ? '' : expected);
    setAttr(banner, 'data-strategy', strategy || '');
    banner.classList.add('has-change');
    banner.classList.toggle('is-many', expected != null && frac > 0.5);
  };

  Panels.prototype.renderRebalance = function (view) {
    var rb = view.rebalance || {};
    var box = $('rebalance');
    var moved = rb.moved || 0, total = rb.total || 0;
    setAttr(box, 'data-moved', moved);
    setAttr(box, 'data-total', total);
    setAttr(box, 'data-in-progress', rb.in_progress ? 'true' : 'false');
    var bar = $('rebalance-progress');
    bar.max = Math.max(1, total);
    bar.value = Math.min(moved, Math.max(1, total));
    var text = 'idle';
    if (total) {
      text = (rb.in_progress ? 'moving: ' : 'done: ') + moved + ' of ' + total + ' copies moved';
      if (rb.in_progress && rb.waiting_on && rb.waiting_on.length) text += ', waiting on ' + U.listText(rb.waiting_on);
      if (!rb.in_progress && rb.done_ms != null && rb.started_ms != null) text += ' in ' + U.fmtMs(rb.done_ms - rb.started_ms);
      if (rb.cleanup) text += '; ' + rb.cleanup + ' old copies still to delete';
    }
    setText($('rebalance-text'), text);
  };

  Panels.prototype.renderBalance = function (view) {
    var b = view.balance || {};
    var box = $('balance');
    if (b.max_over_mean == null) { setText(box, 'Balance: –'); return; }
    setText(box, 'Balance: busiest node ' + b.max_over_mean.toFixed(2) + '× the mean, spread ' +
      (b.stdev_pct != null ? Math.round(b.stdev_pct) + '%' : '–'));
    setAttr(box, 'data-level', b.max_over_mean > 1.5 ? 'bad' : b.max_over_mean > 1.25 ? 'warn' : 'ok');
  };

  Panels.prototype.renderBars = function (view, hot) {
    var nodes = view.nodes || [];
    var ids = nodes.map(function (n) { return n.id; });
    var maxKeys = Math.max(1, Math.max.apply(null, nodes.map(function (n) { return n.keys || 0; }).concat([0])));
    var maxLoad = Math.max(1, Math.max.apply(null, nodes.map(loadOf).concat([0])));
    var keys = U.barList($('key-bars'), ids);
    var load = U.barList($('load-bars'), ids);
    nodes.forEach(function (n) {
      var k = keys[n.id], l = load[n.id];
      setAttr(k, 'data-alive', n.alive ? 'true' : 'false');
      setAttr(l, 'data-alive', n.alive ? 'true' : 'false');
      l.classList.toggle('is-hot', !!hot[n.id]);
      U.setBar(k, (n.keys || 0) / maxKeys, (n.keys || 0) + ' keys' + (n.alive ? '' : ' (down)'), n.keys || 0);
      U.setBar(l, loadOf(n) / maxLoad, rps(loadOf(n)) + (hot[n.id] ? ' HOT' : ''), Math.round(loadOf(n)));
    });
  };

  Panels.prototype.renderCharts = function (view) {
    var series = view.series || [];
    var ids = (view.nodes || []).map(function (n) { return n.id; });
    this.loadChart.setSeries(ids.map(function (id, i) {
      return {
        key: id, label: id, color: colourOf(id), dash: i % 4,
        // The engine leaves idle nodes out of a sample: absent means 0 requests/s, not unknown.
        value: function (r) { return r.load ? (r.load[id] || 0) : null; },
      };
    }));
    this.loadChart.setMarkers(this.lab.markers);
    this.staleChart.setMarkers(this.lab.markers);
    this.loadChart.update(series);
    this.staleChart.update(series);
  };

  Panels.prototype.renderQuorum = function (view) {
    var n = view.replicas || 1;
    var w = view.write_quorum, r = view.read_quorum;
    var wSel = $('quorum-w'), rSel = $('quorum-r');
    if (this.lab.changed('quorum-options', n)) {
      [wSel, rSel].forEach(function (sel) {
        sel.replaceChildren();
        for (var i = 1; i <= n; i++) sel.appendChild(html('option', { value: i }, String(i)));
      });
    }
    var editing = this.lab.dirty.quorum || wSel === document.activeElement || rSel === document.activeElement;
    if (!editing && w != null) {
      wSel.value = String(w);
      rSel.value = String(r);
    }
    var note = $('quorum-note');
    if (w == null) return;
    if (w + r > n) {
      setText(note, 'W + R = ' + (w + r) + ' > ' + n + ' replicas: every read quorum meets the latest write quorum.');
      setAttr(note, 'data-level', 'ok');
    } else {
      setText(note, 'W + R = ' + (w + r) + ' ≤ ' + n + ' replicas: a read can miss the latest write (stale reads).');
      setAttr(note, 'data-level', 'bad');
    }
  };

  Panels.prototype.renderStrategy = function (view) {
    if (this.lab.dirty.strategy) return;
    var radio = $('strategy-' + view.strategy);
    if (radio && !radio.checked) radio.checked = true;
  };

  Panels.prototype.renderHistory = function (view) {
    var history = view.history || [];
    if (!this.lab.changed('history', history)) return;
    var tbody = $('history').tBodies[0];
    var rows = document.createDocumentFragment();
    if (!history.length) {
      var empty = html('tr', { class: 'history-empty' });
      empty.appendChild(html('td', { colspan: 6 }, 'No client operations yet.'));
      rows.appendChild(empty);
    }
    for (var i = history.length - 1; i >= 0; i--) {
      var r = history[i];
      var status = r.status || 'pending';
      var tr = html('tr', { class: 'op op-' + status + (r.stale ? ' op-stale' : ''), 'data-op-id': r.id, 'data-status': status, 'data-stale': r.stale ? 'true' : 'false' });
      tr.appendChild(html('td', null, String(r.id)));
      tr.appendChild(html('td', null, r.client || ''));
      var what = html('td', { class: 'op-what' }, r.op === 'put' ? 'put ' + r.key + '=' + r.value : r.op + ' ' + r.key);
      if (r.node) what.appendChild(html('span', { class: 'op-via' }, ' via ' + r.node));
      tr.appendChild(what);
      tr.appendChild(html('td', { class: 'num' }, U.fmtShortTime(r.invoke) + ' → ' + (r.complete == null ? '…' : U.fmtShortTime(r.complete))));
      var statusCell = html('td', { class: 'op-status' }, status + (r.node && status === 'pending' ? ' (at ' + r.node + ')' : ''));
      if (r.stale) statusCell.appendChild(html('span', { class: 'stale-badge', title: 'This read missed an acknowledged write' }, 'STALE'));
      tr.appendChild(statusCell);
      var result = '';
      if (r.op === 'get' && status === 'ok') {
        result = r.result == null ? '(no value)' : String(r.result);
        if (r.version != null) result += ' · ' + versionText(r.version);
      } else if (r.op === 'put' && r.version != null && status === 'ok') {
        result = versionText(r.version);
      } else if (r.error) {
        result = String(r.error);
      }
      if (r.acks || r.replies) tr.title = (r.acks ? 'acknowledged by ' + r.acks.join(', ') : '') + (r.replies ? 'answered by ' + r.replies.join(', ') : '');
      tr.appendChild(html('td', { class: 'op-result' }, result));
      rows.appendChild(tr);
    }
    tbody.replaceChildren(rows);
    var stale = history.filter(function (r) { return r.stale; }).length;
    var note = $('stale-note');
    note.hidden = !stale;
    setAttr(note, 'data-level', 'bad');
    var w = view.write_quorum, rq = view.read_quorum, n = view.replicas;
    setText(note, stale ? stale + ' stale read' + (stale > 1 ? 's' : '') + ' below: each returned a version older than an acknowledged put. ' +
      (w + rq <= n ? 'With W = ' + w + ' and R = ' + rq + ', W + R ≤ ' + n + ' replicas, so a read quorum can miss every replica the write reached.'
        : 'W + R > N now, but the quorums were smaller, or the placement was moving, when these reads ran.') : '');
  };

  Panels.prototype.renderClientSelect = function (view) {
    var clients = view.clients || [];
    if (clients.length && this.lab.changed('clients', clients)) U.fillSelect($('client-id'), clients);
    var members = view.members || (view.nodes || []).map(function (n) { return n.id; });
    if (this.lab.changed('coordinators', members)) U.fillSelect($('client-via'), members, 'any node');
  };

  Panels.prototype.renderStats = function (view) {
    var series = view.series || [];
    var last = series.length ? series[series.length - 1] : null;
    setText($('stat-keys').querySelector('.stat-value'), view.keys_total != null ? String(view.keys_total) : '–');
    setText($('stat-ops').querySelector('.stat-value'), last ? String(Math.round(last.ops_rps || 0)) : '–');
    var stale = view.stale_reads || 0;
    setText($('stat-stale').querySelector('.stat-value'), String(stale));
    setAttr($('stat-stale'), 'data-level', stale ? 'bad' : '');
  };

  /** The hot keys, each with a button that stops its stream of requests. */
  Panels.prototype.renderHotKeys = function (view) {
    var hot = view.hot_keys || [];
    if (!this.lab.changed('hot_keys', hot)) return;
    var list = $('hot-keys');
    var lab = this.lab;
    var rows = hot.map(function (h) {
      var li = html('li', { class: 'hot-key', 'data-key': h.key });
      li.appendChild(html('span', { class: 'hot-key-text' }, h.key + ': ' + Math.round(h.rate_rps) + ' req/s to ' +
        U.listText(h.replicas || []) + (h.coordinator ? ' (' + h.coordinator + ' coordinates)' : '')));
      var stop = html('button', { type: 'button', class: 'small', 'aria-label': 'Stop the requests on ' + h.key }, 'Stop');
      stop.addEventListener('click', function () { lab.command({ op: 'hot_key', key: h.key, rate_rps: 0 }); });
      li.appendChild(stop);
      return li;
    });
    list.replaceChildren.apply(list, rows);
  };

  function summary(view, hot) {
    var nodes = view.nodes || [];
    var down = nodes.filter(function (n) { return !n.alive; }).map(function (n) { return n.id; });
    var hotIds = Object.keys(hot);
    var parts = [nodes.length + ' nodes, ' + (STRATEGY[view.strategy] || view.strategy) + '.'];
    parts.push(nodes.map(function (n) { return n.id + ' ' + (n.keys || 0) + ' keys'; }).join(', ') + '.');
    if (down.length) parts.push('Down: ' + U.listText(down) + '.');
    if (hotIds.length) parts.push('Hot: ' + U.listText(hotIds) + '.');
    return parts.join(' ');
  }

  // ---------------------------------------------------------------- controls
  function wire(lab) {
    $('btn-add-node').addEventListener('click', function () { lab.command({ op: 'add_node' }); });

    Array.prototype.forEach.call(document.querySelectorAll('input[name=strategy]'), function (radio) {
      radio.addEventListener('change', function () {
        if (!radio.checked) return;
        lab.dirty.strategy = true;
        lab.command({ op: 'set_strategy', strategy: radio.value }).then(function () { lab.dirty.strategy = false; });
      });
    });

    $('load-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var n = lab.intField('load-keys', 1, 100000, 'Type how many keys to load: a whole number from 1 to 100000.');
      if (n != null) lab.command({ op: 'load', keys: n });
    });

    ['quorum-w', 'quorum-r'].forEach(function (id) {
      $(id).addEventListener('change', function () { lab.dirty.quorum = true; });
    });
    $('quorum-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var w = parseInt($('quorum-w').value, 10), r = parseInt($('quorum-r').value, 10);
      lab.command({ op: 'set_quorum', w: w, r: r }).then(function () { lab.dirty.quorum = false; });
    });

    $('hot-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var key = $('hot-key').value.trim();
      if (!key) {
        lab.showError('Type the key that gets hot, for example user:42.');
        $('hot-key').focus();
        return;
      }
      var rate = lab.intField('hot-rate', 0, 100000, 'The rate must be a whole number of requests per second, from 0 to 100000.');
      if (rate != null) lab.command({ op: 'hot_key', key: key, rate_rps: rate });
    });
  }

  function nodeMenu(id, lab) {
    var n = lab.model.node(id);
    var alive = n ? !!n.alive : true;
    var facts = [];
    if (n) {
      facts.push((n.keys || 0) + ' keys');
      facts.push(rps(loadOf(n)));
      var view = lab.model.view || {};
      if (view.ring_share && view.ring_share[id] != null) facts.push('owns ' + pct(view.ring_share[id], 1) + ' of the ring');
      if (n.saturated) facts.push('overloaded, ' + U.fmtMs(n.queue_ms) + ' queue, ' + n.shed + ' shed');
      if (n.leaving) facts.push('leaving: handing its keys over');
    }
    var leaving = !!(n && (n.leaving || n.member === false));
    return {
      title: id + ': ' + (n ? (alive ? (leaving ? 'leaving' : 'up') : 'down') : 'gone'),
      facts: facts.join(' · '),
      actions: [
        { action: 'crash', label: 'Crash ' + id, disabled: !alive, cmd: { op: 'crash', node: id } },
        { action: 'restart', label: 'Restart ' + id, disabled: alive, cmd: { op: 'restart', node: id } },
        { action: 'remove_node', label: 'Remove ' + id + ' from the cluster', danger: true, disabled: leaving, cmd: { op: 'remove_node', node: id } },
      ],
    };
  }

  // ------------------------------------------------------------------- start
  var drawing = null, panels = null;
  K.start({
    name: 'shardingLab',
    init: function (lab) {
      drawing = new Drawing(lab);
      panels = new Panels(lab);
      wire(lab);
    },
    frame: function (frame, view, ctx) {
      if (ctx.newEpoch) drawing.messages.clear();
      if (drawing.layout(view)) ctx.lab.closeMenu(false);
      var hot = panels.render(frame, view);
      drawing.updatePlacement(view);
      drawing.updateNodes(view, hot);
      drawing.updateNetwork(view);
      drawing.messages.sync(view.messages);
      setText($('ring-summary'), summary(view, hot));
    },
    tick: function (now) {
      drawing.messages.draw(now);
    },
    menu: nodeMenu,
    marker: function (e) {
      var quorum = /^quorums set to W = (\d+), R = (\d+)/.exec(e.text);
      if (quorum) return 'W=' + quorum[1] + ' R=' + quorum[2];
      if (e.kind === 'placement' && !/ must move/.test(e.text)) return null; // not the follow-ups (rebalance done, hand-offs)
      if (e.kind === 'placement' || e.kind === 'load' || e.kind === 'fault' || e.kind === 'stale') return U.shortLabel(e.text, 24);
      return null;
    },
  });
})();
