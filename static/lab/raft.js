/* The Raft lab page: the ring, the logs and the clients, on top of the lab kit.
 *
 * The kit (kit.js) runs the socket, the run controls, the keyboard, narration,
 * invariants, the network panel, errors and the node menu. This file draws:
 *   - when a frame arrives, the ring (nodes, partitions, messages) and the
 *     panels (logs, history, clients) from it, each only when its part changed;
 *   - at 60 fps, what moves: messages in flight (interpolated between send_ms
 *     and deliver_ms) and election-timer arcs.
 */
(function () {
  'use strict';

  var K = window.LabKit;
  var U = K.util;
  var $ = U.$, svg = U.svg, html = U.html, setAttr = U.setAttr, setText = U.setText, fmtShortTime = U.fmtShortTime;

  var RING = { cx: 530, cy: 338, r: 240 };
  var NODE_R = 54; // for up to 5 nodes; larger clusters get smaller nodes (see nodeRadius)
  var LOG_COLUMNS = 20;

  function nodeRadius(count) {
    return count <= 5 ? NODE_R : count <= 7 ? 48 : 42;
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

  // ----------------------------------------------------------------- the ring
  function Ring(svgEl, lab) {
    this.svg = svgEl;
    this.lab = lab;
    this.layers = {
      partitions: $('layer-partitions'),
      links: $('layer-links'),
      clients: $('layer-clients'),
      nodes: $('layer-nodes'),
    };
    this.nodes = new Map(); // id -> {g, parts..., x, y}
    this.clients = new Map(); // id -> {x, y}
    this.nodeKey = '';
    this.clientKey = '';
    this.partitionKey = '';
    var self = this;
    this.messages = new K.MessageLayer($('layer-messages'), {
      position: function (id) { return self.position(id); },
      build: buildMessage,
    });
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
    this.partitionKey = '';
    return true;
  };

  Ring.prototype.buildNode = function (id, x, y, layer, count) {
    var R = nodeRadius(count);
    var timerC = 2 * Math.PI * (R + 7);
    var g = svg('g', {
      class: 'node', 'data-role': 'follower', 'data-alive': 'true', 'aria-label': id,
      transform: 'translate(' + x.toFixed(1) + ' ' + y.toFixed(1) + ')',
    }, layer);
    var halo = svg('circle', { class: 'node-halo', r: R + 21 }, g);
    svg('circle', { class: 'node-focus', r: R + 14 }, g);
    svg('circle', { class: 'node-timer-track', r: R + 7 }, g);
    var timer = svg('circle', { class: 'node-timer', r: R + 7, transform: 'rotate(-90)', 'stroke-dasharray': '0 ' + timerC }, g);
    var body = svg('circle', { class: 'node-body role-follower', r: R, 'data-menu-anchor': '' }, g);
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
    this.lab.bindNode(g, id);
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
    U.clear(layer);
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
    U.clear(layer);
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
    U.clear(links);
    cuts.forEach(function (pair) {
      var a = self.nodes.get(pair[0]), b = self.nodes.get(pair[1]);
      if (!a || !b) return;
      svg('line', { class: 'cut-line', x1: a.x, y1: a.y, x2: b.x, y2: b.y }, links);
      var mx = a.x + (b.x - a.x) * 0.6, my = a.y + (b.y - a.y) * 0.6;
      svg('path', { class: 'cut-mark', d: 'M' + (mx - 9) + ' ' + (my - 9) + ' L' + (mx + 9) + ' ' + (my + 9) + ' M' + (mx + 9) + ' ' + (my - 9) + ' L' + (mx - 9) + ' ' + (my + 9) }, links);
    });
  };

  // ---- messages: colour AND shape
  function buildMessage(msg, g) {
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
    if (mark != null) K.messageMark(g, mark);
  }

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

  // ------------------------------------------------------------------ panels
  function renderSummary(view) {
    var nodes = view.nodes || [];
    var down = nodes.filter(function (n) { return !n.alive; }).map(function (n) { return n.id; });
    var text = nodes.length + ' nodes. ' + (view.leader ? 'Leader: ' + view.leader + '. ' : 'No leader. ') +
      (down.length ? 'Down: ' + down.join(', ') + '. ' : '') +
      ((view.network && view.network.partition && view.network.partition.length) ? 'The network is partitioned.' : '');
    setText($('ring-summary'), text);
  }

  function renderLogs(lab, view) {
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
    if (!lab.changed('logs', sig)) return;
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
    var atEnd = !lab.logsScrolled || scroller.scrollLeft + scroller.clientWidth >= scroller.scrollWidth - 8;
    thead.replaceChildren(headRow);
    tbody.replaceChildren(rows);
    // keep the newest indexes in sight unless the learner scrolled back on purpose
    if (atEnd) scroller.scrollLeft = scroller.scrollWidth;
    lab.logsScrolled = true;
    if (!last) {
      var empty = html('tr');
      empty.appendChild(html('td', { colspan: 2, class: 'hint' }, 'Every log is empty so far.'));
      tbody.appendChild(empty);
    }
  }

  function renderHistory(lab, view) {
    var history = view.history || [];
    if (!lab.changed('history', history)) return;
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
  }

  function renderClientSelect(lab, view) {
    var clients = view.clients || [];
    if (clients.length && lab.changed('clients', clients)) U.fillSelect($('client-id'), clients);
  }

  function nodeMenu(id, lab) {
    var n = lab.model.node(id);
    var alive = n ? !!n.alive : true;
    var role = n ? (alive ? n.role : 'down') : 'unknown';
    var facts = [];
    if (n) {
      facts.push('voted for ' + (n.voted_for || 'nobody'));
      facts.push('commit index ' + n.commit_index);
      facts.push(((n.log_offset || 0) + n.log.length) + ' log entries');
      if (n.leader_id && n.role !== 'leader') facts.push('thinks the leader is ' + n.leader_id);
    }
    return {
      title: id + ': ' + role + (n ? ', term ' + n.term : ''),
      facts: facts.join(' · '),
      actions: [
        { action: 'crash', label: 'Crash ' + id, disabled: !alive, cmd: { op: 'crash', node: id } },
        { action: 'restart', label: 'Restart ' + id, disabled: alive, cmd: { op: 'restart', node: id } },
        { action: 'timeout', label: 'Force timeout ' + id, disabled: !alive, cmd: { op: 'timeout', node: id } },
        { action: 'crash_lose_disk', label: 'Crash ' + id + ' and lose its disk', danger: true, cmd: { op: 'crash_lose_disk', node: id } },
      ],
    };
  }

  function wireRaftControls(lab) {
    $('btn-isolate-leader').addEventListener('click', function () {
      var view = lab.model.view;
      var leader = view && view.leader;
      if (!leader) {
        lab.showError('There is no leader to isolate right now.');
        return;
      }
      var others = (view.nodes || []).map(function (n) { return n.id; }).filter(function (id) { return id !== leader; });
      lab.command({ op: 'partition', groups: [others, [leader]] });
    });
  }

  // ------------------------------------------------------------------- start
  var ring = null;
  K.start({
    name: 'raftLab', // window.raftLab, for the console and for browser tests: raftLab.model.frame
    init: function (lab) {
      ring = new Ring($('ring'), lab);
      wireRaftControls(lab);
    },
    frame: function (frame, view, ctx) {
      var lab = ctx.lab;
      if (ctx.newEpoch) ring.messages.clear();
      if (ring.layout(view)) lab.closeMenu(false);
      ring.layoutClients(view);
      ring.updateNodes(view);
      ring.updateNetwork(view);
      ring.messages.sync(view.messages);
      setText($('leader-value'), view.leader || 'none');
      renderLogs(lab, view);
      renderHistory(lab, view);
      renderClientSelect(lab, view);
      renderSummary(view);
    },
    tick: function (now) {
      ring.messages.draw(now);
      ring.drawTimers(now);
    },
    menu: nodeMenu,
  });
})();
