/* refdesk patron widget; protocol in docs/widget-protocol.md. No globals, no build step. */
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const root = $('refdesk');
  if (!root) return;
  const D = root.dataset;
  const ALL = window.REFDESK_STRINGS || {};
  const lang = ALL[D.lang] ? D.lang : 'en';
  const S = Object.assign({ status: {}, endedBy: {} }, ALL.en, ALL[lang]);
  const KEY = 'refdesk:' + (D.queue || '');
  const log = $('rd-log'), form = $('rd-form'), input = $('rd-input'), sendBtn = $('rd-send');
  const endBtn = $('rd-end'), newBtn = $('rd-new'), conn = $('rd-conn'), alertBox = $('rd-alert');
  const notice = $('rd-notice'), typingEl = $('rd-typing'), over = $('rd-over'), overTitle = $('rd-over-title');

  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = S[e.dataset.i18n] || e.textContent;
  for (const e of document.querySelectorAll('[data-i18n-label]')) {
    if (S[e.dataset.i18nLabel]) e.setAttribute('aria-label', S[e.dataset.i18nLabel]);
  }

  let st = { resume: null, chat: null, lastSeq: 0 };
  const seen = new Set();    // seqs shown: never show one twice
  const pending = new Map(); // client id -> {id, text}, not yet acknowledged
  const mine = new Map();    // client id -> element of the patron's own message
  let ws = null, ready = false, stopped = false, wantEnd = false;
  let attempt = 0, timer = 0, rejected = 0, gotError = false;
  let typing = 'paused', typingTimer = 0, theirTimer = 0;

  const isNum = (n) => typeof n === 'number' && isFinite(n);
  const save = () => {
    try {
      sessionStorage.setItem(KEY, JSON.stringify(
        { resume: st.resume, last_seq: st.lastSeq, chat: st.chat, pending: [...pending.values()] }));
    } catch (e) { /* storage blocked in a third-party iframe: the chat still works */ }
  };
  const forget = () => { try { sessionStorage.removeItem(KEY); } catch (e) { /* blocked */ } };
  const rid = () => (crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join(''));
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const send = (obj) => ws?.readyState === 1 && (ws.send(JSON.stringify(obj)), true);

  // http(s) URLs become links, built with DOM APIs only (text is never parsed as HTML).
  function linkify(p, text) {
    const re = /\bhttps?:\/\/[^\s<>"'`]+/gi;
    let last = 0, m;
    while ((m = re.exec(text))) {
      let url = m[0];
      while (/[.,;:!?'")\]}>]$/.test(url)) {
        if (url.endsWith(')') && url.split('(').length >= url.split(')').length) break;
        url = url.slice(0, -1);
      }
      let href = null;
      try { const u = new URL(url); if (/^https?:$/.test(u.protocol)) href = u.href; } catch (e) { /* no */ }
      if (!href) continue;
      const a = el('a', null, url);
      Object.assign(a, { href, target: '_blank', rel: 'noopener noreferrer' });
      p.append(text.slice(last, m.index), a);
      re.lastIndex = last = m.index + url.length;
    }
    p.append(text.slice(last));
  }

  function bubble(kind, name, text, ts, links) {
    const box = el('div', 'rd-msg rd-' + kind);
    const meta = box.appendChild(el('div', 'rd-meta'));
    meta.appendChild(el('span', 'rd-name', name));
    const d = ts ? new Date(ts) : new Date();
    if (!isNaN(d)) {
      meta.appendChild(el('time', null, d.toLocaleTimeString(lang, { hour: 'numeric', minute: '2-digit' })))
        .dateTime = d.toISOString();
    }
    const p = box.appendChild(el('p', 'rd-text'));
    if (links) linkify(p, String(text ?? '')); else p.textContent = text ?? '';
    return box;
  }

  // Insert in seq order; pending messages stay last; local notes are barriers.
  function add(node, seq) {
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    let ref = null;
    if (isNum(seq)) {
      if (!node.dataset.seq) node.dataset.seq = seq;
      for (let c = log.lastElementChild; c; c = c.previousElementSibling) {
        const cs = c.dataset.seq;
        if (cs === undefined ? !c.classList.contains('rd-pending') : +cs <= seq) break;
        ref = c;
      }
    }
    log.insertBefore(node, ref);
    if (atEnd || node.classList.contains('rd-patron')) log.scrollTop = log.scrollHeight;
  }

  // A server event with a seq: false if it was already shown.
  function fresh(seq) {
    if (!isNum(seq)) return true;
    if (seen.has(seq)) return false;
    seen.add(seq);
    st.lastSeq = Math.max(st.lastSeq, seq);
    return true;
  }

  function delivered(id, seq) {
    const box = mine.get(id);
    pending.delete(id);
    save();
    if (!box) return void (isNum(seq) && seen.add(seq));
    box.classList.remove('rd-pending');
    box.querySelector('.rd-tag')?.remove();
    if (!isNum(seq) || box.dataset.seq) return;
    seen.add(seq);
    box.dataset.seq = seq;
    if (+box.previousElementSibling?.dataset.seq > seq) { box.remove(); add(box, seq); }
  }

  function queueMessage(text, id) {
    const box = bubble('patron rd-pending', S.you, text);
    box.dataset.id = id;
    box.firstChild.appendChild(el('span', 'rd-tag', S.sending));
    add(box);
    pending.set(id, { id, text });
    mine.set(id, box);
    save();
    if (ready) send({ type: 'message', id, text });
  }

  function setStatus(s) {
    if (!s) return;
    $('rd-status').dataset.status = s;
    $('rd-status-text').textContent = S.status[s] || s;
  }

  function setNotice(text, pos) {
    const parts = text ? [String(text)] : [];
    if (isNum(pos) && pos > 0) parts.push(S.position.replace('{n}', pos));
    notice.textContent = parts.join(' ');
  }

  function showTyping(on) {
    clearTimeout(theirTimer);
    typingEl.textContent = on ? S.typing : '';
    typingEl.hidden = !on;
    if (on) theirTimer = setTimeout(showTyping, 30000, false);
  }

  function setTyping(state) {
    clearTimeout(typingTimer);
    if (state === 'composing') typingTimer = setTimeout(setTyping, 5000, 'paused');
    if (state !== typing && ready) send({ type: 'typing', state });
    typing = state;
  }

  const setEnabled = (on) => { input.disabled = sendBtn.disabled = endBtn.disabled = !on; };

  // The chat is over (ended or banned): drop the socket, lock the form, show the panel.
  function finish(title, detail, canRestart) {
    stopped = true;
    ready = false;
    clearTimeout(timer);
    if (ws) { ws.onclose = null; ws.close(); ws = null; }
    conn.textContent = '';
    showTyping(false);
    for (const id of pending.keys()) {
      const tag = mine.get(id)?.querySelector('.rd-tag');
      if (tag) tag.textContent = S.notSent;
    }
    pending.clear();
    const f = document.activeElement;
    const lost = !f || f === document.body || f === input || f === sendBtn || f === endBtn;
    setEnabled(false);
    setNotice('');
    overTitle.textContent = title;
    $('rd-over-detail').textContent = detail || '';
    newBtn.hidden = !canRestart;
    over.hidden = false;
    log.scrollTop = log.scrollHeight;
    if (lost) (canRestart ? newBtn : overTitle).focus();
  }

  const handlers = {
    welcome(m) {
      const changed = m.resumed === false || (st.chat != null && m.chat !== st.chat);
      if (changed && (seen.size || st.lastSeq)) {
        seen.clear();
        st.lastSeq = 0;
        log.insertBefore(el('p', 'rd-note', S.newChatStarted), log.querySelector('.rd-pending'));
      }
      st.resume = m.resume || null;
      st.chat = m.chat ?? null;
      ready = true;
      attempt = rejected = 0;
      conn.textContent = '';
      setStatus(m.status);
      save();
      for (const p of pending.values()) send({ type: 'message', id: p.id, text: p.text });
      if (wantEnd) wantEnd = !send({ type: 'end' });
    },
    ack: (m) => delivered(m.id, m.seq),
    message(m) {
      if (!fresh(m.seq)) return;
      let box;
      if (m.from === 'patron') {
        if (m.id && mine.has(m.id)) return delivered(m.id, m.seq);
        box = bubble('patron', S.you, m.text, m.ts);
        if (m.id) mine.set(m.id, box);
      } else if (m.from === 'operator') {
        box = bubble('operator', m.name || S.librarian, m.text, m.ts, true);
        showTyping(false);
      } else {
        box = bubble('system', m.name || S.system, m.text, m.ts);
      }
      add(box, m.seq);
      save();
    },
    typing: (m) => m.from !== 'patron' && showTyping(m.state === 'composing'),
    status(m) { setStatus(m.status); setNotice(m.text, m.position); },
    ended(m) {
      if (!fresh(m.seq)) return;
      add(bubble('system', S.system, m.text || S.endedBy[m.by] || S.ended), m.seq);
      save();
      finish(S.ended, '', true);
      if (D.statusPath) {
        fetch(D.statusPath, { cache: 'no-store' }).then((r) => r.ok && r.json())
          .then((j) => j && setStatus(j.status)).catch(() => {});
      }
    },
    banned(m) { forget(); finish(S.bannedTitle, m.text || S.banned, false); },
    error(m) { gotError = true; alertBox.textContent = m.text || S.error; },
  };

  function onFrame(ev) {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m && Object.prototype.hasOwnProperty.call(handlers, m.type)) handlers[m.type](m);
  }

  function connect() {
    clearTimeout(timer);
    if (ws) { ws.onclose = null; ws.close(); }
    ready = gotError = false;
    let s;
    try {
      const url = new URL(D.wsPath || '/ws/' + encodeURIComponent(D.queue || ''), location.href);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      s = ws = new WebSocket(url.href);
    } catch (e) { ws = null; return retry(); }
    s.onopen = () => {
      const hello = { type: 'hello', last_seq: st.resume ? st.lastSeq : 0 };
      if (st.resume) hello.resume = st.resume;
      s.send(JSON.stringify(hello));
    };
    s.onmessage = onFrame;
    s.onclose = () => {
      if (ws !== s) return;
      // Refused twice with an error before any welcome: the token is dead, start over.
      if (!ready && gotError && st.resume && ++rejected >= 2) st.resume = null;
      ws = null;
      ready = false;
      retry();
    };
  }

  function retry() {
    if (stopped) return;
    conn.textContent = S.reconnecting;
    timer = setTimeout(connect, Math.min(1000 * 2 ** attempt++, 15000));
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    // Control characters (except tab and newline) cannot travel over XMPP: drop them.
    const text = input.value.replace(/[\0-\x08\x0B\x0C\x0E-\x1F\x7F\uFFFE\uFFFF]/g, '').trim();
    if (input.disabled || !text) return;
    alertBox.textContent = '';
    input.value = '';
    clearTimeout(typingTimer);
    typing = 'paused';
    queueMessage(text, rid());
    input.focus();
  });

  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : sendBtn.click();
    }
  });
  input.addEventListener('input', () => setTyping(input.value.trim() ? 'composing' : 'paused'));

  endBtn.addEventListener('click', () => { if (!stopped && !send({ type: 'end' })) wantEnd = true; });

  newBtn.addEventListener('click', () => {
    forget();
    st = { resume: null, chat: null, lastSeq: 0 };
    seen.clear();
    pending.clear();
    mine.clear();
    log.textContent = alertBox.textContent = '';
    setNotice('');
    over.hidden = true;
    stopped = wantEnd = false;
    attempt = rejected = 0;
    setEnabled(true);
    input.focus();
    connect();
  });

  addEventListener('online', () => { if (!ready && !stopped) { attempt = 0; connect(); } });

  // Start. A reloaded page has an empty log, so it asks for the whole transcript (last_seq 0).
  let saved = {};
  try { saved = JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch (e) { /* none */ }
  if (typeof saved.resume === 'string' && saved.resume) {
    st.resume = saved.resume;
    st.chat = saved.chat ?? null;
  }
  setStatus(D.status);
  for (const p of Array.isArray(saved.pending) ? saved.pending : []) {
    if (typeof p?.id === 'string' && typeof p.text === 'string') queueMessage(p.text, p.id);
  }
  connect();
})();
