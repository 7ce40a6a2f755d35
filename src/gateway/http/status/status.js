// ferry status page: polls GET /api/status with the API token (kept in sessionStorage) and draws the
// live calls and the last hour's charts. No framework; element ids are stable for tests.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var TOKEN_KEY = 'ferry-api-token';
  var POLL_MS = 2000;
  var pollTimer = null;
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  var reasonColor = {};
  window.ferryStatus = { polls: 0, last: null };

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
  function showError(text) { var e = $('status-error'); e.textContent = text; e.hidden = !text; }
  function askToken(why) {
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    $('token-form').hidden = false;
    $('status-main').hidden = true;
    $('forget-token').hidden = true;
    showError(why || '');
    $('token').focus();
  }

  function fmtDuration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    var h = Math.floor(m / 60);
    var two = function (n) { return (n < 10 ? '0' : '') + n; };
    return (h > 0 ? h + ':' + two(m % 60) : m) + ':' + two(s % 60);
  }
  function party(p) { return p.party + (p.kind === 'webrtc' ? ' (web)' : ''); }
  function pair(q, field, unit, badAt) {
    var one = function (leg) {
      if (!leg || leg[field] === undefined) return '–';
      var v = leg[field];
      var text = (field === 'lossPercent' ? v.toFixed(1) : Math.round(v)) + ' ' + unit;
      return v >= badAt ? '<span class="bad">' + text + '</span>' : text;
    };
    return q ? one(q.caller) + ' / ' + one(q.callee) : '–';
  }

  function cell(tr, html, cls) { var td = document.createElement('td'); td.innerHTML = html; if (cls) td.className = cls; tr.appendChild(td); return td; }
  function text(s) { var d = document.createElement('div'); d.textContent = s; return d.innerHTML; }

  function renderCalls(snap) {
    var body = $('calls-body');
    body.textContent = '';
    snap.calls.forEach(function (c) {
      var tr = document.createElement('tr');
      tr.dataset.callId = c.id;
      tr.id = 'call-' + c.id;
      cell(tr, text(party(c.caller)), 'caller').title = c.caller.uri;
      cell(tr, text(party(c.callee)), 'callee').title = c.callee.uri;
      cell(tr, text(c.state), 'state state-' + c.state);
      cell(tr, fmtDuration(snap.now - (c.answeredAt || c.createdAt)), 'time');
      cell(tr, pair(c.quality, 'lossPercent', '%', 5), 'loss');
      cell(tr, pair(c.quality, 'jitterMs', 'ms', 30), 'jitter');
      cell(tr, pair(c.quality, 'rttMs', 'ms', 300), 'rtt');
      body.appendChild(tr);
    });
    $('call-count').textContent = String(snap.calls.length);
    $('no-calls').hidden = snap.calls.length > 0;
  }

  function axes(ctx, w, h, max, pad) {
    ctx.strokeStyle = '#ccc';
    ctx.fillStyle = '#777';
    ctx.font = '10px system-ui, sans-serif';
    ctx.beginPath(); ctx.moveTo(pad, 4); ctx.lineTo(pad, h - 14); ctx.lineTo(w - 4, h - 14); ctx.stroke();
    ctx.fillText(String(max), 2, 12);
    ctx.fillText('0', 2, h - 14);
    ctx.fillText('-60 min', pad, h - 2);
    ctx.fillText('now', w - 24, h - 2);
  }

  function drawActive(history) {
    var c = $('active-chart'); var ctx = c.getContext('2d'); var w = c.width; var h = c.height; var pad = 24;
    ctx.clearRect(0, 0, w, h);
    var max = Math.max(1, Math.max.apply(null, history.map(function (m) { return m.activeMax || 0; })));
    axes(ctx, w, h, max, pad);
    var step = (w - pad - 6) / Math.max(1, history.length - 1);
    ctx.strokeStyle = '#1f5f8b'; ctx.lineWidth = 2; ctx.beginPath();
    var started = false;
    history.forEach(function (m, i) {
      if (m.activeMax === undefined) { started = false; return; }
      var x = pad + i * step; var y = (h - 14) - (m.activeMax / max) * (h - 22);
      if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y);
    });
    ctx.stroke(); ctx.lineWidth = 1;
    // a dot per sampled minute, so a lone minute shows too
    ctx.fillStyle = '#1f5f8b';
    history.forEach(function (m, i) {
      if (m.activeMax === undefined) return;
      ctx.beginPath(); ctx.arc(pad + i * step, (h - 14) - (m.activeMax / max) * (h - 22), 2.5, 0, 2 * Math.PI); ctx.fill();
    });
  }

  function drawEnds(history) {
    var c = $('ends-chart'); var ctx = c.getContext('2d'); var w = c.width; var h = c.height; var pad = 24;
    ctx.clearRect(0, 0, w, h);
    var totals = history.map(function (m) { var n = 0; for (var r in m.ended) n += m.ended[r]; return n; });
    var max = Math.max(1, Math.max.apply(null, totals));
    axes(ctx, w, h, max, pad);
    var bw = (w - pad - 6) / history.length;
    history.forEach(function (m, i) {
      var y = h - 14;
      Object.keys(m.ended).sort().forEach(function (r) {
        if (!reasonColor[r]) reasonColor[r] = COLORS[Object.keys(reasonColor).length % COLORS.length];
        var bh = (m.ended[r] / max) * (h - 22);
        ctx.fillStyle = reasonColor[r];
        ctx.fillRect(pad + 1 + i * bw, y - bh, Math.max(1, bw - 1), bh);
        y -= bh;
      });
    });
    var legend = $('ends-legend'); legend.textContent = '';
    Object.keys(reasonColor).sort().forEach(function (r) {
      var s = document.createElement('span'); var sw = document.createElement('i');
      sw.style.background = reasonColor[r]; s.appendChild(sw); s.appendChild(document.createTextNode(r)); legend.appendChild(s);
    });
  }

  function poll() {
    pollTimer = null;
    fetch('/api/status', { headers: { Authorization: 'Bearer ' + token() }, cache: 'no-store' }).then(function (r) {
      if (r.status === 401 || r.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        return r.json().catch(function () { return {}; }).then(function (b) { askToken('The gateway refused the token: ' + (b.error || r.status) + '.'); });
      }
      if (!r.ok) throw new Error('the gateway answered ' + r.status);
      return r.json().then(function (snap) {
        showError('');
        $('token-form').hidden = true; $('status-main').hidden = false; $('forget-token').hidden = false;
        $('gateway').textContent = snap.gatewayId;
        $('updated').textContent = 'updated ' + new Date(snap.now).toLocaleTimeString();
        renderCalls(snap);
        drawActive(snap.history);
        drawEnds(snap.history);
        window.ferryStatus.polls++;
        window.ferryStatus.last = snap;
        pollTimer = setTimeout(poll, POLL_MS);
      });
    }).catch(function (err) {
      showError('Cannot reach the gateway: ' + err.message + '. Retrying.');
      pollTimer = setTimeout(poll, POLL_MS * 2);
    });
  }

  $('token-form').onsubmit = function (e) {
    e.preventDefault();
    var t = $('token').value.trim();
    if (!t) { showError('Enter the API token.'); return; }
    sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    poll();
  };
  $('forget-token').onclick = function () { sessionStorage.removeItem(TOKEN_KEY); askToken('Token forgotten.'); };

  if (token()) poll(); else askToken('');
})();
