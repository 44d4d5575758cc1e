/* LabSocket: the browser end of one simulation's WebSocket.
 *
 *   const sock = new LabSocket('/ws/sim/abc123/', { statusEl: document.getElementById('conn-status') });
 *   sock.on('frame', (frame) => ...);          // every frame; already acknowledged
 *   sock.on('hello' | 'status' | 'error' | 'message' | 'state', fn);
 *   sock.connect();
 *   sock.command({ op: 'crash', node: 'n3' }).then(result => ..., err => ...);  // resolves once a frame shows it
 *   sock.control('speed', { speed: 0.01 });
 *
 * Protocol (JSON text both ways):
 *   server -> browser: frame (binary: header JSON, newline, zlib-compressed view JSON);
 *                      as JSON text: hello, reply {id, ok, result, shown_by}, error {id|null, message}, status {level, message},
 *                      closing {code, reason} just before the server closes (daphne drops close reasons)
 *   browser -> server: ack {seq}: every frame up to seq is handled; sent once half
 *                      the server's frame window is used or ack_ms after the
 *                      first unacknowledged frame (both from hello.limits);
 *                      command {id, cmd}; control {id, action, speed?, seed?}
 *
 * Reconnects by itself after a drop or a server restart, with full-jitter
 * exponential backoff (a random delay between 0 and min(cap, base * 2^attempt)),
 * so a restarted server is not hit by every browser at the same instant.
 * Close codes 4001 (not allowed) and 4004 (no such simulation) are final.
 */
(function (global) {
  'use strict';

  var FINAL_CODES = {
    4001: 'You are not allowed to open this simulation.',
    4004: 'This simulation does not exist (any more). Start a new one from the catalog.',
  };
  var DEFAULT_REASONS = {
    1001: 'The server is going away',
    1006: 'The connection dropped',
    1011: 'The server hit an internal error',
    1012: 'The server is restarting',
    4008: 'The connection was too slow to keep up',
    4029: 'Too many messages were sent too quickly',
  };
  var REQUEST_TIMEOUT_MS = 15000;
  var FULL_HZ = 20; // the frame rate of a worker that keeps up
  var STABLE_MS = 5000; // a connection that lasted this long resets the backoff
  var SHOWN_WAIT_MS = 2000; // the longest a command waits for the frame that shows it

  function LabError(message, local) {
    var err = new Error(message);
    err.local = !!local; // true: made up in the browser, the server never saw the request
    return err;
  }

  function LabSocket(path, options) {
    options = options || {};
    this.path = path;
    this.baseMs = options.baseMs || 500;
    this.capMs = options.capMs || 15000;
    this.statusEl = options.statusEl || null;
    this.ws = null;
    this.state = 'idle'; // idle | connecting | connected | reconnecting | closed
    this.reason = '';
    this.code = null;
    this.attempt = 0;
    this.retryAt = 0;
    this.openedAt = 0;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = {};
    this.limits = { max_message_bytes: 4096, frame_window: 10, ack_ms: 200 };
    this._ackSeq = null; // the newest frame handled and not yet acknowledged
    this._ackCount = 0;
    this._ackTimer = null;
    this.shownSeq = 0; // the newest frame handled
    this._unshown = new Set(); // command results waiting for the frame that shows them
    this.hello = null;
    this._retryTimer = null;
    this._tickTimer = null;
    this._onOnline = this._onOnline.bind(this);
    if (global.addEventListener) global.addEventListener('online', this._onOnline);
  }

  LabSocket.prototype.on = function (type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
    return this;
  };

  LabSocket.prototype._emit = function (type, data) {
    var list = this.listeners[type] || [];
    for (var i = 0; i < list.length; i++) {
      try { list[i](data); } catch (e) { if (global.console) console.error(e); }
    }
  };

  LabSocket.prototype.url = function () {
    var loc = global.location;
    var scheme = loc.protocol === 'https:' ? 'wss://' : 'ws://';
    if (/^wss?:\/\//.test(this.path)) return this.path;
    return scheme + loc.host + this.path;
  };

  LabSocket.prototype.isOpen = function () {
    return !!this.ws && this.ws.readyState === 1;
  };

  LabSocket.prototype.connect = function () {
    if (this.state === 'closed') return;
    this._clearTimers();
    if (typeof global.DecompressionStream !== 'function') {
      // Frames arrive compressed (docs/FRAMES.md); say so rather than show nothing.
      this._setState('closed', 'This browser cannot unpack live frames (no DecompressionStream). ' +
        'Use a current Chrome, Edge, Firefox or Safari (16.4 or later).');
      return;
    }
    this._setState(this.attempt ? 'reconnecting' : 'connecting');
    var ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this._scheduleReconnect('Could not open a connection');
      return;
    }
    this.ws = ws;
    var self = this;
    ws.onopen = function () {
      if (self.ws !== ws) return;
      self.openedAt = Date.now();
      self.reason = '';
      self._setState('connected');
    };
    ws.binaryType = 'arraybuffer';
    ws.onmessage = function (event) {
      if (self.ws !== ws) return;
      if (typeof event.data === 'string') self._onMessage(event.data);
      else self._onFrameBytes(ws, event.data);
    };
    ws.onerror = function () { /* a close event always follows */ };
    ws.onclose = function (event) {
      if (self.ws !== ws) return;
      self.ws = null;
      self._onClose(event);
    };
  };

  LabSocket.prototype.reconnectNow = function () {
    if (this.state !== 'reconnecting') return;
    this.connect();
  };

  LabSocket.prototype.close = function () {
    this._clearTimers();
    this._setState('closed', 'Closed');
    if (this.ws) { var ws = this.ws; this.ws = null; ws.close(1000, 'page closed'); }
    this._failPending('The connection was closed');
  };

  LabSocket.prototype._onOnline = function () {
    if (this.state === 'reconnecting' && !this.ws) this.connect();
  };

  LabSocket.prototype._onClose = function (event) {
    var code = event.code;
    // daphne drops the close frame's reason, so the server sends it first as a
    // 'closing' message; prefer whichever arrived.
    var told = this._closing && this._closing.code === code ? this._closing.reason : '';
    this._closing = null;
    var reason = event.reason || told || DEFAULT_REASONS[code] || 'The connection was lost';
    this.code = code;
    this._failPending('The connection dropped before the server answered; try again once it is back');
    if (FINAL_CODES[code]) {
      this._clearTimers();
      this._setState('closed', event.reason || told || FINAL_CODES[code]);
      return;
    }
    if (this.openedAt && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
    this.openedAt = 0;
    // A new connection starts a new window: nothing left to acknowledge.
    if (this._ackTimer) { clearTimeout(this._ackTimer); this._ackTimer = null; }
    this._ackSeq = null;
    this._ackCount = 0;
    this._scheduleReconnect(reason);
  };

  LabSocket.prototype._scheduleReconnect = function (reason) {
    this._clearTimers();
    var ceiling = Math.min(this.capMs, this.baseMs * Math.pow(2, this.attempt));
    var delay = Math.random() * ceiling; // full jitter
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this._setState('reconnecting', reason);
    var self = this;
    this._retryTimer = setTimeout(function () { self._retryTimer = null; self.connect(); }, delay);
    this._tickTimer = setInterval(function () { self._renderStatus(); }, 250);
  };

  LabSocket.prototype._clearTimers = function () {
    if (this._retryTimer) { clearTimeout(this._retryTimer); this._retryTimer = null; }
    if (this._tickTimer) { clearInterval(this._tickTimer); this._tickTimer = null; }
  };

  LabSocket.prototype._onMessage = function (data) {
    var msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (!msg || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'frame':
        this._onFrame(msg);
        break;
      case 'closing':
        this._closing = { code: msg.code, reason: String(msg.reason || '') };
        break;
      case 'hello':
        this.hello = msg;
        if (msg.limits) this.limits = Object.assign({}, this.limits, msg.limits);
        this._emit('hello', msg);
        break;
      case 'reply': {
        var waiting = this.pending.get(msg.id);
        if (waiting) {
          this.pending.delete(msg.id);
          clearTimeout(waiting.timer);
          var result = msg.result === undefined ? null : msg.result;
          if (msg.ok === false) waiting.reject(LabError(msg.message || 'The server refused that request', false));
          else this._resolveWhenShown(waiting.resolve, result, msg.shown_by);
        }
        this._emit('reply', msg);
        break;
      }
      case 'error': {
        var failed = msg.id == null ? null : this.pending.get(msg.id);
        if (failed) {
          this.pending.delete(msg.id);
          clearTimeout(failed.timer);
          failed.reject(LabError(msg.message || 'The server refused that request', false));
        }
        this._emit('error', msg);
        break;
      }
      case 'status':
        this._emit('status', msg);
        break;
      default:
        break;
    }
    this._emit('message', msg);
  };

  // A frame is a binary message: its header as JSON, a newline, then the view
  // as zlib-compressed JSON (docs/FRAMES.md). Inflating is asynchronous, so
  // frames go through one promise chain and are handled in the order they came.
  var NEWLINE = 10;
  var UTF8 = new TextDecoder();

  function inflate(bytes) {
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Response(stream).text();
  }

  LabSocket.prototype._onFrameBytes = function (ws, buffer) {
    var bytes = new Uint8Array(buffer);
    var cut = bytes.indexOf(NEWLINE);
    if (cut < 0) return;
    var frame;
    try { frame = JSON.parse(UTF8.decode(bytes.subarray(0, cut))); } catch (e) { return; }
    var body = bytes.subarray(cut + 1);
    var self = this;
    this._frameChain = (this._frameChain || Promise.resolve())
      .then(function () { return inflate(body); })
      .then(function (text) {
        if (self.ws !== ws) return; // a frame of a connection that has gone
        frame.view = JSON.parse(text);
        self._onFrame(frame);
      })
      .catch(function () { /* a broken frame: skip it, the next one replaces it */ });
  };

  LabSocket.prototype._onFrame = function (msg) {
    if (typeof msg.hz === 'number' && msg.hz !== this.hz) { this.hz = msg.hz; this._renderStatus(); }
    this._emit('frame', msg);
    if (typeof msg.seq === 'number' && msg.seq > this.shownSeq) this.shownSeq = msg.seq;
    var seq = this.shownSeq;
    this._unshown.forEach(function (waiting) { if (waiting.seq <= seq) waiting.done(); });
    this._ackLater(msg.seq);
  };

  // A reply and the frame that shows its effect travel by different paths, so
  // either may come first, and frames queued before the command may still be
  // inflating. A command resolves once a frame at or past the reply's shown_by
  // has been handled: a control the learner just moved is then never reset by
  // an older frame. If that frame is slow to come, resolve anyway.
  LabSocket.prototype._resolveWhenShown = function (resolve, result, shownBy) {
    if (typeof shownBy !== 'number' || shownBy <= this.shownSeq) { resolve(result); return; }
    var unshown = this._unshown;
    var waiting = {
      seq: shownBy,
      done: function () { clearTimeout(waiting.timer); unshown.delete(waiting); resolve(result); },
    };
    waiting.timer = setTimeout(waiting.done, SHOWN_WAIT_MS);
    unshown.add(waiting);
  };

  // Acknowledge in batches: the server holds at most frame_window frames for
  // us, so ack when half of it is used (on a message, never throttled) or
  // ack_ms after the first frame of a batch (a timer, for the last frames
  // before a quiet spell). A few acks a second instead of one per frame.
  LabSocket.prototype._ackLater = function (seq) {
    var self = this;
    this._ackSeq = seq;
    this._ackCount += 1;
    if (this._ackCount >= Math.max(1, Math.floor((this.limits.frame_window || 2) / 2))) {
      this._ackNow();
    } else if (!this._ackTimer) {
      // ack_ms is for 20 frames a second; a slower stream acks as many frames later.
      var slower = this.hz && this.hz < FULL_HZ ? FULL_HZ / this.hz : 1;
      this._ackTimer = setTimeout(function () { self._ackTimer = null; self._ackNow(); }, (this.limits.ack_ms || 200) * slower);
    }
  };

  LabSocket.prototype._ackNow = function () {
    if (this._ackTimer) { clearTimeout(this._ackTimer); this._ackTimer = null; }
    if (this._ackSeq === null) return;
    this._sendRaw({ type: 'ack', seq: this._ackSeq });
    this._ackSeq = null;
    this._ackCount = 0;
  };

  LabSocket.prototype._sendRaw = function (obj) {
    if (!this.isOpen()) return false;
    try { this.ws.send(JSON.stringify(obj)); return true; } catch (e) { return false; }
  };

  LabSocket.prototype._request = function (payload) {
    var self = this;
    if (!this.isOpen()) {
      return Promise.reject(LabError('Not connected to the simulation yet; wait a moment and try again.', true));
    }
    var id = this.nextId++;
    payload.id = id;
    var text = JSON.stringify(payload);
    var max = this.limits && this.limits.max_message_bytes;
    if (max && new Blob([text]).size > max) {
      return Promise.reject(LabError('That request is too large to send (at most ' + max + ' bytes).', true));
    }
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        if (self.pending.delete(id)) reject(LabError('The server did not answer in time.', true));
      }, REQUEST_TIMEOUT_MS);
      self.pending.set(id, { resolve: resolve, reject: reject, timer: timer });
      if (!self._sendRaw(payload)) {
        self.pending.delete(id);
        clearTimeout(timer);
        reject(LabError('Could not send; the connection is down.', true));
      }
    });
  };

  /** Send an engine command, e.g. {op: "crash", node: "n3"}. Resolves with the reply's result. */
  LabSocket.prototype.command = function (cmd) {
    return this._request({ type: 'command', cmd: cmd });
  };

  /** Send a control: pause, resume, step, speed ({speed}) or reset ({seed: int|null}). */
  LabSocket.prototype.control = function (action, extra) {
    var payload = { type: 'control', action: action };
    if (action === 'speed') payload.speed = extra && extra.speed;
    if (action === 'reset') payload.seed = extra && extra.seed != null ? extra.seed : null;
    return this._request(payload);
  };

  LabSocket.prototype._failPending = function (message) {
    var pending = this.pending;
    this.pending = new Map();
    pending.forEach(function (waiting) {
      clearTimeout(waiting.timer);
      waiting.reject(LabError(message, true));
    });
  };

  LabSocket.prototype._setState = function (state, reason) {
    this.state = state;
    if (reason !== undefined) this.reason = reason;
    this._renderStatus();
    this._emit('state', { state: state, reason: this.reason, code: this.code, retryAt: this.retryAt });
  };

  /** The status line as [announced text, countdown]; the countdown is shown but not announced. */
  LabSocket.prototype.describeParts = function () {
    switch (this.state) {
      case 'connected':
        // A busy engine worker sends fewer frames (each frame says its rate); the
        // page still animates smoothly between them, but say so.
        return [this.hz && this.hz < FULL_HZ ? 'Connected · ' + this.hz + ' updates/s (busy server)' : 'Connected', ''];
      case 'connecting': return ['Connecting…', ''];
      case 'reconnecting': {
        if (this.ws) return ['Reconnecting…', ''];
        var seconds = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
        var why = this.reason ? this.reason.replace(/[.\s]+$/, '') + '. ' : '';
        return seconds > 0 ? [why + 'Reconnecting', ' in ' + seconds + ' s'] : [why + 'Reconnecting…', ''];
      }
      case 'closed': return [this.reason || 'Disconnected', ''];
      default: return ['Not connected', ''];
    }
  };

  LabSocket.prototype.describe = function () {
    return this.describeParts().join('');
  };

  LabSocket.prototype._renderStatus = function () {
    var el = this.statusEl;
    if (!el) return;
    if (el.getAttribute('data-state') !== this.state) el.setAttribute('data-state', this.state);
    el.setAttribute('data-close-code', this.code == null ? '' : String(this.code));
    var parts = this.describeParts();
    var textEl = el.querySelector('.conn-text');
    if (!textEl) {
      textEl = document.createElement('span');
      textEl.className = 'conn-text';
      el.appendChild(textEl);
    }
    var countEl = el.querySelector('.conn-countdown');
    if (!countEl) {
      countEl = document.createElement('span');
      countEl.className = 'conn-countdown';
      countEl.setAttribute('aria-hidden', 'true'); // a per-second countdown would flood a screen reader
      el.appendChild(countEl);
    }
    if (textEl.textContent !== parts[0]) textEl.textContent = parts[0];
    if (countEl.textContent !== parts[1]) countEl.textContent = parts[1];
  };

  global.LabSocket = LabSocket;
})(window);
