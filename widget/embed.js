/* refdesk embed snippet (docs/embedding.md). Paste on a partner page:
   <script src="https://CHAT-HOST/embed.js" data-queue="ask" async></script>
   data-mode: "button" (default: floating button, slide-out chat), "inline" (the chat where the
   script is, or in data-target), "popup" (a button there that opens a chat window);
   data-lang "en" | "es"; data-label: button text; data-target: "#id" of the container;
   data-color: "#rrggbb" for the button; data-height: inline height in px.
   No globals, no cookies, no third-party assets; styles set through the DOM (CSP-safe). */
(() => {
  'use strict';
  const T = {
    en: { title: 'Chat with a librarian', label: 'Ask a librarian', close: 'Close chat',
      status: { available: 'Available now', away: 'Away', busy: 'Busy: you may wait', offline: 'Offline: leave a question' } },
    es: { title: 'Chatear con la biblioteca', label: 'Pregunte a la biblioteca', close: 'Cerrar el chat',
      status: { available: 'Disponible ahora', away: 'Ausente', busy: 'Ocupado: quizá tenga que esperar',
        offline: 'Fuera de línea: deje su pregunta' } },
  };
  const DOTS = { available: '#1a7f37', away: '#bf8700', busy: '#cf222e', offline: '#6e7781' };
  const css = (e, s) => (Object.assign(e.style, s), e);
  const make = (tag, s, props) => Object.assign(css(document.createElement(tag), s || {}), props);
  const reduced = () => matchMedia('(prefers-reduced-motion: reduce)').matches;

  // The admin's colour must carry white text at 4.5:1: darken it until it does.
  function accent(hex) {
    if (!/^#([0-9a-f]{3}){1,2}$/i.test(hex || '')) return '#0b57d0';
    const h = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, '$&$&') : hex;
    let c = [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
    const lum = () => c.reduce((s, v, i) => (v /= 255,
      s + [0.2126, 0.7152, 0.0722][i] * (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)), 0);
    while (1.05 / (lum() + 0.05) < 4.6) c = c.map((v) => Math.floor(v * 0.92));
    return `rgb(${c})`;
  }

  function setup(me) {
    const d = me.dataset;
    if (!d.queue || d.refdeskDone) return;
    d.refdeskDone = '1';
    const page = (document.documentElement.lang || '').slice(0, 2).toLowerCase();
    const lang = T[d.lang] ? d.lang : T[page] ? page : 'en';
    const S = T[lang];
    const q = encodeURIComponent(d.queue);
    const url = new URL('chat/' + q, me.src);
    url.searchParams.set('lang', lang);
    if (d.transport === 'lp') url.searchParams.set('transport', 'lp');
    const target = d.target ? document.querySelector(d.target) : null;
    const mode = ['inline', 'popup'].includes(d.mode) ? d.mode : 'button';
    // Inline frames and popup buttons go where the script is (or into data-target); the
    // default button floats at the bottom right.
    const here = mode !== 'button' && me.parentNode && !document.head.contains(me);
    const place = (node) => {
      if (target) target.appendChild(node);
      else if (here) me.after(node);
      else document.body.appendChild(node);
    };
    const frame = () => make('iframe', { display: 'block', width: '100%', border: '0' },
      { src: url.href, title: S.title });

    if (mode === 'inline') {
      const h = Math.max(320, parseInt(d.height, 10) || 600);
      return place(css(frame(), { height: h + 'px', maxWidth: '100%', border: '1px solid #d0d7de', borderRadius: '8px' }));
    }

    const floating = !target && !here;
    const btn = make(mode === 'popup' ? 'a' : 'button', {
      display: 'inline-flex', alignItems: 'center', gap: '10px', margin: '0', padding: '10px 18px',
      border: '0', borderRadius: '999px', background: accent(d.color), color: '#ffffff',
      font: '600 16px/1.25 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
      textAlign: 'left', textDecoration: 'none', cursor: 'pointer', boxShadow: '0 2px 10px rgba(0,0,0,.3)',
      ...(floating ? { position: 'fixed', right: '16px', bottom: '16px', zIndex: '2147483000' } : {}),
    });
    const dot = btn.appendChild(make('span', { flex: 'none', width: '12px', height: '12px',
      borderRadius: '50%', border: '2px solid #ffffff', background: DOTS.offline, display: 'none' }));
    dot.setAttribute('aria-hidden', 'true');
    const words = btn.appendChild(make('span', { display: 'flex', flexDirection: 'column' }));
    words.appendChild(make('span', {}, { textContent: d.label || S.label }));
    const state = words.appendChild(make('span', { fontSize: '14px', fontWeight: '400' }));
    btn.addEventListener('focus', () => css(btn, { outline: '3px solid #1b1f24', outlineOffset: '2px' }));
    btn.addEventListener('blur', () => css(btn, { outline: '' }));

    // Availability on the button, from the cheap status endpoint (again each minute).
    const status = new URL('api/queues/' + q + '/status', me.src).href;
    const refresh = () => {
      if (document.hidden) return;
      fetch(status, { credentials: 'omit', cache: 'no-cache' }).then((r) => r.ok && r.json()).then((j) => {
        if (!j || !DOTS[j.status]) return;
        css(dot, { display: 'inline-block', background: DOTS[j.status] });
        state.textContent = S.status[j.status];
      }).catch(() => {});
    };
    refresh();
    setInterval(refresh, 60000);

    if (mode === 'popup') {
      btn.href = url.href;
      btn.target = '_blank';
      btn.rel = 'noopener';
      btn.addEventListener('click', (e) => {
        const w = window.open(url.href, 'refdesk_' + d.queue.replace(/\W/g, '_'), 'popup,width=420,height=660');
        if (!w) return; // blocked: the link opens a tab instead
        e.preventDefault();
        try { w.opener = null; } catch (x) { /* already ours */ }
        w.focus();
      });
      return place(btn);
    }

    // Button mode: a slide-out panel with the chat, made on first open and kept after.
    const phone = matchMedia('(max-width: 480px)');
    const id = 'refdesk-panel-' + d.queue.replace(/\W/g, '_');
    const panel = make('div', {
      position: 'fixed', zIndex: '2147483001', display: 'flex', flexDirection: 'column', overflow: 'hidden',
      background: '#ffffff', boxShadow: '0 4px 24px rgba(0,0,0,.35)', visibility: 'hidden', opacity: '0',
      transform: 'translateY(24px)',
    }, { id });
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', S.title);
    const bar = panel.appendChild(make('div', { display: 'flex', justifyContent: 'flex-end', background: '#1b1f24' }));
    const close = bar.appendChild(make('button', { margin: '0', padding: '8px 14px', border: '0', background: 'none',
      color: '#ffffff', font: '600 15px/1.25 system-ui, sans-serif', cursor: 'pointer', textDecoration: 'underline' },
    { type: 'button', textContent: S.close + ' ' }));
    close.appendChild(make('span', {}, { textContent: '✕' })).setAttribute('aria-hidden', 'true');
    close.addEventListener('focus', () => css(close, { outline: '3px solid #ffffff', outlineOffset: '-4px' }));
    close.addEventListener('blur', () => css(close, { outline: '' }));
    let chat = null;
    const fit = () => css(panel, phone.matches
      ? { inset: '0', width: '100%', height: '100%', maxWidth: 'none', maxHeight: 'none', borderRadius: '0' }
      : { inset: 'auto', right: '16px', bottom: '84px', width: '400px', height: '600px',
        maxWidth: 'calc(100vw - 32px)', maxHeight: 'calc(100vh - 104px)', borderRadius: '12px' });
    fit();
    phone.addEventListener?.('change', fit);
    btn.type = 'button';
    btn.setAttribute('aria-expanded', 'false');
    btn.setAttribute('aria-controls', id);
    const open = (on) => {
      if (on && !chat) chat = panel.appendChild(css(frame(), { flex: '1', minHeight: '0', height: '100%' }));
      btn.setAttribute('aria-expanded', on);
      css(panel, { transition: reduced() ? 'none' : 'opacity .2s, transform .2s, visibility .2s',
        visibility: on ? 'visible' : 'hidden', opacity: on ? '1' : '0', transform: on ? 'none' : 'translateY(24px)' });
      (on ? chat : btn).focus();
    };
    btn.addEventListener('click', () => open(btn.getAttribute('aria-expanded') !== 'true'));
    close.addEventListener('click', () => open(false));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && btn.getAttribute('aria-expanded') === 'true') open(false);
    });
    addEventListener('message', (e) => {
      if (chat && e.source === chat.contentWindow && e.data && e.data.refdesk === 'close') open(false);
    });
    place(btn);
    document.body.appendChild(panel);
  }

  const me = document.currentScript;
  const all = () => (me && me.dataset.queue ? [me] : document.querySelectorAll('script[data-queue][src*="embed.js"]'))
    .forEach(setup);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', all);
  else all();
})();
