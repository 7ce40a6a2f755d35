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
    setCallState(s.direction === 'incoming' ? 'ringing-in' : 'calling');
    message('');
    s.on('progress', function () { if (s.direction === 'outgoing') setCallState('ringing'); buttons(); });
    s.on('accepted', function () { setCallState('connected'); buttons(); });
    s.on('confirmed', function () { setCallState('connected'); if (s.connection) attachRemoteAudio(s.connection); buttons(); });
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
      stopWatching();
      setCallState('ended');
      window.ferryEndedAt = Date.now();
      message(e.originator === 'remote' ? 'The other side hung up.' : 'Call ended.', e.originator === 'remote' ? '' : 'info');
      session = null; buttons();
    });
    s.on('failed', function (e) {
      stopWatching();
      setCallState('failed');
      window.ferryEndedAt = Date.now();
      var why = e.cause || 'failed';
      var text = noIceCandidate ? 'Call failed: this browser found no network path for audio (no ICE candidate in ' + (ICE_GATHER_TIMEOUT_MS / 1000) + ' s). Check the network or the STUN/TURN servers.' :
        !window.isSecureContext && (why === 'User Denied Media Access' || why === 'Bad Media Description') ? 'Call failed: the browser gives the microphone only to a secure (HTTPS) page.' :
        why === 'Busy' ? 'The other side is busy.' :
        why === 'Canceled' ? (e.originator === 'remote' ? 'The caller hung up before you answered.' : 'Call cancelled.') :
        why === 'Unavailable' || why === 'Not Found' ? 'Nobody to reach at that number (' + why + ').' :
        'Call failed: ' + why + '.';
      message(text);
      session = null; buttons();
    });
    buttons();
  }

  function register() {
    var user = $('user').value.trim();
    if (!user) { message('Enter a user.'); return; }
    var socket = new JsSIP.WebSocketInterface($('ws-url').value.trim());
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: 'sip:' + user + '@' + config.domain,
      password: $('password').value,
      register: true,
      session_timers: true,
    });
    ua.on('registered', function () { setRegState('registered'); buttons(); });
    ua.on('unregistered', function () { setRegState('unregistered'); buttons(); });
    ua.on('registrationFailed', function (e) { setRegState('failed'); message('Registration failed: ' + e.cause + '.'); buttons(); });
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

  $('register').onclick = register;
  $('unregister').onclick = unregister;
  $('call').onclick = function () {
    var target = $('target').value.trim();
    if (!target) { message('Enter a number or user.'); return; }
    if (target.indexOf('@') < 0) target = 'sip:' + target + '@' + config.domain;
    if (!window.isSecureContext || !navigator.mediaDevices) { message('Calls need the microphone, which this browser gives only to a secure (HTTPS) page.'); return; }
    ua.call(target, callOptions());
  };
  $('answer').onclick = function () { if (session) session.answer(callOptions()); };
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
    window.ferryReady = true;
    buttons();
  });
  setCallState('idle');
})();
