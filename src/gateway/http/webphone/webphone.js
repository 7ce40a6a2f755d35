// ferry webphone: a small JsSIP client. Element ids are stable so tests can drive the page.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var ua = null;
  var session = null;
  var muted = false;
  var held = false;
  var config = { wsUrl: '', domain: 'ferry.local', iceServers: [] };
  /** a call whose browser found no ICE candidate within this long fails with a message */
  var ICE_GATHER_TIMEOUT_MS = 5000;

  /**
   * Registration retry. JsSIP does not send a failed REGISTER again; after a server restart (503, 408,
   * 480, a timeout, a lost connection) the page would stay unregistered. Such a failure is retried after
   * the server's Retry-After when it gives one, else after 1 s doubling to 30 s (plus up to 20 % jitter,
   * so many pages do not come back at once). Any other failure (a wrong password) stays failed.
   * window.ferryRegisterRetries counts the retries scheduled, window.ferryRegisterRetryMs the last delay.
   */
  var registerRetry = {
    timer: null, attempt: 0,
    TRANSIENT_STATUS: [408, 480, 503],
    TRANSIENT_CAUSES: ['Connection Error', 'Request Timeout'],
    FIRST_MS: 1000, MAX_MS: 30000, MAX_RETRY_AFTER_MS: 300000,
    transient: function (e) {
      var status = e.response ? e.response.status_code : 0;
      return this.TRANSIENT_STATUS.indexOf(status) >= 0 || (!e.response && this.TRANSIENT_CAUSES.indexOf(e.cause) >= 0);
    },
    delayMs: function (e) {
      var ra = e.response && e.response.getHeader ? parseInt(String(e.response.getHeader('Retry-After') || ''), 10) : NaN;
      if (isFinite(ra) && ra >= 0) return Math.min(Math.max(ra * 1000, 500), this.MAX_RETRY_AFTER_MS);
      var base = Math.min(this.FIRST_MS * Math.pow(2, this.attempt), this.MAX_MS);
      return Math.round(base * (1 + 0.2 * Math.random()));
    },
    /** schedules a new REGISTER on `forUa` after a transient failure; returns the delay, or -1 */
    schedule: function (forUa, e) {
      if (!this.transient(e)) return -1;
      var ms = this.delayMs(e);
      this.attempt++;
      this.cancel();
      window.ferryRegisterRetries = (window.ferryRegisterRetries || 0) + 1;
      window.ferryRegisterRetryMs = ms;
      var self = this;
      this.timer = setTimeout(function () {
        self.timer = null;
        if (ua !== forUa || forUa.isRegistered()) return;
        setRegState('registering');
        // without a connection JsSIP registers by itself once its WebSocket is back
        if (forUa.isConnected()) forUa.register();
      }, ms);
      return ms;
    },
    cancel: function () { if (this.timer) clearTimeout(this.timer); this.timer = null; },
    reset: function () { this.cancel(); this.attempt = 0; },
  };

  /** the ring tone: WebAudio-generated (two tones, 2 s on, 4 s off), no audio file */
  var ringer = {
    ctx: null, timer: null, nodes: [],
    /** created on a click (browsers start audio only after a user gesture) */
    prepare: function () {
      var AC = window.AudioContext || window.webkitAudioContext;
      if (!this.ctx && AC) { try { this.ctx = new AC(); } catch (e) { this.ctx = null; } }
      if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(function () {});
    },
    burst: function () {
      var ctx = this.ctx; if (!ctx) return;
      var gain = ctx.createGain(); gain.gain.value = 0.08; gain.connect(ctx.destination);
      var self = this;
      [440, 480].forEach(function (f) {
        var o = ctx.createOscillator(); o.frequency.value = f; o.connect(gain);
        o.start(); o.stop(ctx.currentTime + 2); self.nodes.push(o);
      });
    },
    start: function () {
      if (this.timer) return;
      this.prepare();
      window.ferryRinging = true;
      this.burst();
      var self = this;
      this.timer = setInterval(function () { self.burst(); }, 6000);
    },
    stop: function () {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.nodes.forEach(function (o) { try { o.stop(); } catch (e) { /* already stopped */ } });
      this.nodes = [];
      window.ferryRinging = false;
    },
  };

  /** the call timer: from the answer, shown as m:ss (h:mm:ss past an hour) */
  var timer = {
    since: 0, handle: null,
    start: function () {
      if (this.handle) return;
      this.since = Date.now();
      var self = this;
      var tick = function () {
        var s = Math.floor((Date.now() - self.since) / 1000);
        window.ferryCallSeconds = s;
        var m = Math.floor(s / 60); var h = Math.floor(m / 60);
        var two = function (n) { return (n < 10 ? '0' : '') + n; };
        $('call-timer').textContent = (h > 0 ? h + ':' + two(m % 60) : m) + ':' + two(s % 60);
      };
      tick();
      this.handle = setInterval(tick, 1000);
    },
    stop: function () { if (this.handle) clearInterval(this.handle); this.handle = null; },
  };

  /**
   * Live call quality from RTCPeerConnection.getStats() once a second: packet loss of what we receive
   * (percent over the last second), jitter (ms) and round-trip time (ms; the RTCP figure, or the ICE
   * pair's when there is none), drawn as a rolling minute on a canvas.
   */
  var quality = {
    samples: [], handle: null, prev: null, MAX: 60,
    start: function (pc) {
      this.stop();
      this.samples = []; this.prev = null;
      window.ferryQualitySamples = 0;
      var self = this;
      this.handle = setInterval(function () { self.sample(pc); }, 1000);
    },
    stop: function () { if (this.handle) clearInterval(this.handle); this.handle = null; },
    sample: function (pc) {
      var self = this;
      pc.getStats().then(function (stats) {
        var lost = 0, received = 0, jitter = 0, rtt;
        var pairRtt;
        stats.forEach(function (r) {
          if (r.type === 'inbound-rtp' && r.kind === 'audio') { lost += r.packetsLost || 0; received += r.packetsReceived || 0; jitter = Math.max(jitter, r.jitter || 0); }
          if (r.type === 'remote-inbound-rtp' && r.kind === 'audio' && typeof r.roundTripTime === 'number') rtt = r.roundTripTime;
          if (r.type === 'candidate-pair' && r.nominated && typeof r.currentRoundTripTime === 'number') pairRtt = r.currentRoundTripTime;
        });
        if (rtt === undefined) rtt = pairRtt;
        var loss = 0;
        if (self.prev) {
          var dl = Math.max(0, lost - self.prev.lost); var dr = Math.max(0, received - self.prev.received);
          loss = dl + dr > 0 ? (100 * dl) / (dl + dr) : 0;
        }
        self.prev = { lost: lost, received: received };
        self.samples.push({ loss: loss, jitterMs: jitter * 1000, rttMs: rtt === undefined ? undefined : rtt * 1000 });
        if (self.samples.length > self.MAX) self.samples.shift();
        window.ferryQualitySamples = (window.ferryQualitySamples || 0) + 1;
        window.ferryQuality = self.samples[self.samples.length - 1];
        self.draw();
      }).catch(function () { /* the connection closed between two samples */ });
    },
    draw: function () {
      var c = $('quality-graph'); var ctx = c.getContext('2d'); var w = c.width; var h = c.height;
      ctx.clearRect(0, 0, w, h);
      var last = this.samples[this.samples.length - 1];
      if (!last) { $('quality-text').textContent = 'No call.'; return; }
      var maxMs = 50;
      this.samples.forEach(function (q) { maxMs = Math.max(maxMs, q.jitterMs, q.rttMs || 0); });
      var step = w / this.MAX;
      var self = this;
      ctx.fillStyle = 'rgba(214,39,40,.55)';
      this.samples.forEach(function (q, i) { var bh = Math.min(1, q.loss / 20) * (h - 12); ctx.fillRect(i * step, h - bh, Math.max(1, step - 1), bh); });
      var line = function (field, color) {
        ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
        var on = false;
        self.samples.forEach(function (q, i) {
          if (q[field] === undefined) { on = false; return; }
          var y = h - 2 - (q[field] / maxMs) * (h - 12);
          if (!on) { ctx.moveTo(i * step + step / 2, y); on = true; } else ctx.lineTo(i * step + step / 2, y);
        });
        ctx.stroke();
      };
      line('jitterMs', '#1f77b4');
      line('rttMs', '#2ca02c');
      ctx.fillStyle = '#777'; ctx.font = '10px system-ui, sans-serif';
      ctx.fillText(Math.round(maxMs) + ' ms', 2, 10);
      $('quality-text').textContent = 'loss ' + last.loss.toFixed(1) + ' % · jitter ' + last.jitterMs.toFixed(1) + ' ms · RTT ' + (last.rttMs === undefined ? '–' : last.rttMs.toFixed(0) + ' ms');
      $('quality-text').className = last.loss >= 5 || last.jitterMs >= 30 || (last.rttMs || 0) >= 300 ? 'bad' : 'muted';
    },
  };

  function setRegState(s) { $('reg-state').textContent = s; }
  function setCallState(s) { $('call-state').textContent = s; window.ferryCallState = s; }
  function message(text, kind) { var m = $('message'); m.textContent = text; m.className = kind || ''; }
  function buttons() {
    var registered = !!ua && ua.isRegistered();
    var inCall = !!session && !session.isEnded();
    var ringingIn = inCall && session.direction === 'incoming' && !session.isEstablished();
    $('register').disabled = !!ua;
    $('unregister').disabled = !ua;
    $('call').disabled = !registered || inCall;
    $('answer').disabled = !ringingIn;
    $('hangup').disabled = !inCall;
    $('mute').disabled = !(inCall && session.isEstablished());
    $('hold').disabled = !(inCall && session.isEstablished());
    var talking = inCall && session.isEstablished();
    // the keypad and transfer work in a call only
    Array.prototype.forEach.call($('keypad').querySelectorAll('button'), function (b) { b.disabled = !talking; });
    $('transfer').disabled = !talking;
    $('mute').textContent = muted ? 'Unmute' : 'Mute';
    $('hold').textContent = held ? 'Resume' : 'Hold';
  }

  function attachRemoteAudio(pc) {
    var remote = new MediaStream();
    pc.getReceivers().forEach(function (r) { if (r.track) remote.addTrack(r.track); });
    $('remote-audio').srcObject = remote;
  }

  function watchSession(s) {
    session = s;
    muted = false;
    held = false;
    var peer = s.remote_identity ? s.remote_identity.uri.user : '';
    $('peer').textContent = peer ? '(' + peer + ')' : '';
    // who is calling: the display name when the caller has one, else the user or number
    var name = s.remote_identity && s.remote_identity.display_name ? String(s.remote_identity.display_name) : peer;
    $('caller-name').textContent = s.direction === 'incoming' ? 'Incoming call from ' + (name || 'an unknown caller') : 'Calling ' + (name || '');
    $('caller-box').hidden = false;
    $('caller-box').className = s.direction === 'incoming' ? 'ringing' : '';
    $('call-timer').textContent = '';
    setCallState(s.direction === 'incoming' ? 'ringing-in' : 'calling');
    message('');
    if (s.direction === 'incoming') ringer.start();
    function talking() {
      ringer.stop();
      $('caller-box').className = '';
      $('caller-name').textContent = (s.direction === 'incoming' ? 'In a call with ' : 'In a call with ') + (name || 'the other side');
      timer.start();
      if (s.connection && !quality.handle) quality.start(s.connection);
    }
    function finished() {
      ringer.stop(); timer.stop(); quality.stop();
      $('caller-box').hidden = true;
    }
    s.on('progress', function () { if (s.direction === 'outgoing') setCallState('ringing'); buttons(); });
    s.on('accepted', function () { setCallState('connected'); talking(); buttons(); });
    s.on('confirmed', function () { setCallState('connected'); if (s.connection) attachRemoteAudio(s.connection); talking(); buttons(); });
    // JsSIP sends the SDP only when ICE gathering completes; with several interfaces (or an
    // unreachable STUN server) that can take long. Half a second after the first candidate is enough.
    var gatherTimer = null;
    var candidates = 0;
    var noIceCandidate = false;
    var noCandidateTimer = null;
    function noNetworkPath() {
      if (candidates > 0 || s.isEnded()) return;
      noIceCandidate = true;
      s.terminate();
    }
    s.on('icecandidate', function (e) {
      candidates++;
      if (!gatherTimer) gatherTimer = setTimeout(function () { e.ready(); }, 500);
    });
    function watchPeerConnection(pc) {
      pc.addEventListener('track', function () { attachRemoteAudio(pc); });
      // no candidate at all (no usable interface, STUN/TURN unreachable): say so instead of ringing forever
      noCandidateTimer = setTimeout(noNetworkPath, ICE_GATHER_TIMEOUT_MS);
      pc.addEventListener('icegatheringstatechange', function () {
        if (pc.iceGatheringState === 'complete') noNetworkPath();
      });
    }
    // an outgoing session has its connection already; an incoming one gets it when answered
    if (s.connection) watchPeerConnection(s.connection);
    else s.on('peerconnection', function (e) { watchPeerConnection(e.peerconnection); });
    function stopWatching() { if (noCandidateTimer) clearTimeout(noCandidateTimer); }
    s.on('hold', function (e) { if (e.originator === 'local') held = true; else setCallState('held by the other side'); buttons(); });
    s.on('unhold', function (e) { if (e.originator === 'local') held = false; else setCallState('connected'); buttons(); });
    s.on('ended', function (e) {
      stopWatching(); finished();
      setCallState('ended');
      window.ferryEndedAt = Date.now();
      message(e.originator === 'remote' ? 'The other side hung up.' : 'Call ended.', e.originator === 'remote' ? '' : 'info');
      session = null; buttons();
    });
    s.on('failed', function (e) {
      stopWatching(); finished();
      setCallState('failed');
      window.ferryEndedAt = Date.now();
      var why = e.cause || 'failed';
      var text = noIceCandidate ? 'Call failed: this browser found no network path for audio (no ICE candidate in ' + (ICE_GATHER_TIMEOUT_MS / 1000) + ' s). Check the network or the STUN/TURN servers.' :
        !window.isSecureContext && (why === 'User Denied Media Access' || why === 'Bad Media Description') ? 'Call failed: the browser gives the microphone only to a secure (HTTPS) page.' :
        why === 'User Denied Media Access' ? 'Call failed: no microphone, or this page was not allowed to use it (check the browser\'s site permissions and that a microphone is plugged in).' :
        why === 'Busy' ? 'The other side is busy.' :
        why === 'Canceled' ? (e.originator !== 'remote' ? 'Call cancelled.' : answeredElsewhere(e.message) ? 'Answered on another of your devices.' : 'The caller hung up before you answered.') :
        why === 'Unavailable' || why === 'Not Found' ? 'Nobody to reach at that number (' + why + ').' :
        'Call failed: ' + why + '.';
      message(text);
      session = null; buttons();
    });
    buttons();
  }

  // the CANCEL of a call another registration of this user answered (RFC 3326: Reason cause 200)
  function answeredElsewhere(cancel) {
    var reason = cancel && typeof cancel.getHeader === 'function' ? cancel.getHeader('Reason') : '';
    return /^\s*SIP\s*;(?:.*;)?\s*cause\s*=\s*200\b/i.test(reason || '');
  }

  function register() {
    var user = $('user').value.trim();
    if (!user) { message('Enter a user.'); return; }
    registerRetry.reset();
    var socket = new JsSIP.WebSocketInterface($('ws-url').value.trim());
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: 'sip:' + user + '@' + config.domain,
      password: $('password').value,
      register: true,
      session_timers: true,
    });
    var thisUa = ua;
    ua.on('registered', function () { registerRetry.reset(); setRegState('registered'); buttons(); });
    ua.on('unregistered', function () { setRegState('unregistered'); buttons(); });
    ua.on('registrationFailed', function (e) {
      setRegState('failed');
      var retryMs = registerRetry.schedule(thisUa, e);
      var status = e.response ? ' (' + e.response.status_code + ')' : '';
      message('Registration failed: ' + e.cause + status + '.' + (retryMs >= 0 ? ' Trying again in ' + Math.ceil(retryMs / 1000) + ' s.' : ''));
      buttons();
    });
    ua.on('disconnected', function () { if (ua) setRegState('disconnected'); buttons(); });
    ua.on('newRTCSession', function (e) {
      if (session && !session.isEnded() && e.originator === 'remote') { e.session.terminate({ status_code: 486 }); return; }
      watchSession(e.session);
    });
    ua.start();
    setRegState('registering');
    buttons();
  }

  function unregister() {
    registerRetry.reset();
    if (!ua) return;
    ua.stop();
    ua = null;
    setRegState('unregistered');
    buttons();
  }

  function callOptions() {
    var pcConfig = { iceServers: Array.isArray(config.iceServers) ? config.iceServers : [] };
    if (config.iceTransportPolicy === 'relay') pcConfig.iceTransportPolicy = 'relay';
    return { mediaConstraints: { audio: true, video: false }, pcConfig: pcConfig, rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false } };
  }

  /** without a secure context the browser gives no microphone: say so, and where the HTTPS page is */
  function showSecureContextNotice() {
    if (window.isSecureContext) return;
    var box = $('not-secure');
    box.textContent = 'This page is not a secure context (it was loaded over plain http:// from another machine), so the browser will not give it the microphone and calls cannot work. ';
    var https = typeof config.httpsUrl === 'string' && /^https:\/\//.test(config.httpsUrl) ? config.httpsUrl : '';
    if (https) {
      var a = document.createElement('a');
      a.href = https;
      a.textContent = 'Open the HTTPS page: ' + https;
      a.id = 'https-link';
      box.appendChild(a);
    } else {
      box.appendChild(document.createTextNode('Ask the administrator for the HTTPS address of this page.'));
    }
    box.hidden = false;
    window.ferryNotSecure = true;
  }

  $('register').onclick = function () { ringer.prepare(); register(); };
  $('unregister').onclick = unregister;
  $('call').onclick = function () {
    var target = $('target').value.trim();
    if (!target) { message('Enter a number or user.'); return; }
    if (target.indexOf('@') < 0) target = 'sip:' + target + '@' + config.domain;
    if (!window.isSecureContext || !navigator.mediaDevices) { message('Calls need the microphone, which this browser gives only to a secure (HTTPS) page.'); return; }
    withMicrophone(function () { ua.call(target, callOptions()); });
  };
  $('answer').onclick = function () {
    if (!session) return;
    ringer.stop();
    if (!window.isSecureContext || !navigator.mediaDevices) { message('Answering needs the microphone, which this browser gives only to a secure (HTTPS) page.'); return; }
    var s = session;
    withMicrophone(function () { if (s === session && !s.isEnded()) s.answer(callOptions()); });
  };
  $('transfer').onclick = function () {
    if (!session || !session.isEstablished()) return;
    var target = $('transfer-target').value.trim();
    if (!target) { message('Enter the number or user to transfer to.'); return; }
    var uri = target.indexOf('@') < 0 ? 'sip:' + target + '@' + config.domain : target;
    message('Transferring to ' + target + '…', 'info');
    try {
      session.refer(uri, {
        eventHandlers: {
          requestFailed: function (e) { message('Transfer refused: ' + (e.cause || 'failed') + '.'); },
          accepted: function () { message('Transferred to ' + target + '.', 'info'); window.ferryTransferred = target; },
          failed: function (e) { message('Transfer to ' + target + ' failed' + (e && e.status_line ? ': ' + e.status_line.reason_phrase : '') + '.'); },
        },
      });
    } catch (err) {
      message('Transfer failed: ' + err.message + '.');
    }
  };

  /** runs `go` when the browser has a microphone; otherwise says so (no call attempt without one) */
  function withMicrophone(go) {
    if (!navigator.mediaDevices.enumerateDevices) { go(); return; }
    navigator.mediaDevices.enumerateDevices().then(function (devices) {
      if (!devices.some(function (d) { return d.kind === 'audioinput'; })) {
        message('No microphone found: plug one in (or allow this browser to use it) and try again.');
        if (session && !session.isEnded() && session.direction === 'incoming') session.terminate({ status_code: 480, reason_phrase: 'No Microphone' });
        return;
      }
      go();
    }, function () { go(); });
  }

  /** no mediaDevices at all (an insecure origin, or a browser without WebRTC): said at once, not at the first call */
  function showNoMediaNotice() {
    if (navigator.mediaDevices && typeof RTCPeerConnection === 'function') return;
    var box = $('no-media');
    box.textContent = !navigator.mediaDevices
      ? 'This browser gives this page no access to microphones (navigator.mediaDevices is missing: the page is not a secure context, or the browser blocks it). Calls cannot work here.'
      : 'This browser has no WebRTC (RTCPeerConnection): calls cannot work here.';
    box.hidden = false;
  }
  $('hangup').onclick = function () { if (session) session.terminate(); };
  $('mute').onclick = function () {
    if (!session) return;
    if (muted) session.unmute({ audio: true }); else session.mute({ audio: true });
    muted = !muted; buttons();
  };
  $('hold').onclick = function () {
    if (!session) return;
    if (held) session.unhold(); else session.hold();
  };
  '123456789*0#'.split('').forEach(function (d) {
    var b = document.createElement('button');
    b.id = 'dtmf-' + (d === '*' ? 'star' : d === '#' ? 'pound' : d);
    b.textContent = d;
    b.disabled = true;
    b.onclick = function () { if (session && session.isEstablished()) session.sendDTMF(d, { transportType: 'RFC2833', duration: 160 }); };
    $('keypad').appendChild(b);
  });

  /** RTP counters of the current call, for tests and the curious: {sent, received} packets */
  window.ferryStats = async function () {
    if (!session || !session.connection) return { sent: 0, received: 0 };
    var stats = await session.connection.getStats();
    var out = { sent: 0, received: 0 };
    stats.forEach(function (r) {
      if (r.type === 'outbound-rtp' && r.kind === 'audio') out.sent += r.packetsSent || 0;
      if (r.type === 'inbound-rtp' && r.kind === 'audio') out.received += r.packetsReceived || 0;
    });
    return out;
  };

  fetch('/api/webphone-config').then(function (r) { return r.json(); }).then(function (c) {
    config = c;
    // only the user name may come from the URL: a password there ends up in history, logs and Referer
    var q = new URLSearchParams(location.search);
    $('ws-url').value = c.wsUrl;
    if (q.get('user')) $('user').value = q.get('user');
    showSecureContextNotice();
    showNoMediaNotice();
    window.ferryReady = true;
    buttons();
  });
  // a closed tab (or a navigation away) ends its call: CANCEL or BYE over the WebSocket, so the other party
  // does not ring on for a caller that is gone
  window.addEventListener('pagehide', function () { if (ua) ua.stop(); });
  setCallState('idle');
})();
