/* Display preferences: "large type" and "high contrast", kept in localStorage.
 *
 * Loaded synchronously in <head> so the saved choice applies before the first
 * paint (no flash of small text on a projector). The toggle buttons are wired
 * once the document is parsed. With no saved choice, high contrast follows the
 * operating system's "more contrast" setting.
 */
(function () {
  'use strict';
  var root = document.documentElement;
  var KEYS = { 'large-type': 'patternsLab.largeType', 'high-contrast': 'patternsLab.highContrast' };

  function read(name) {
    try {
      var saved = window.localStorage.getItem(KEYS[name]);
      if (saved === '1') return true;
      if (saved === '0') return false;
    } catch (e) { /* storage can be blocked; fall through */ }
    if (name === 'high-contrast' && window.matchMedia) {
      return window.matchMedia('(prefers-contrast: more)').matches;
    }
    return false;
  }

  function write(name, on) {
    try { window.localStorage.setItem(KEYS[name], on ? '1' : '0'); } catch (e) { /* ignore */ }
  }

  function apply(name, on) {
    root.classList.toggle(name, on);
    var buttons = document.querySelectorAll('[data-pref="' + name + '"]');
    for (var i = 0; i < buttons.length; i++) buttons[i].setAttribute('aria-pressed', on ? 'true' : 'false');
    document.dispatchEvent(new CustomEvent('patternslab:prefs', { detail: { name: name, on: on } }));
  }

  Object.keys(KEYS).forEach(function (name) { root.classList.toggle(name, read(name)); });

  function wire() {
    Object.keys(KEYS).forEach(function (name) { apply(name, root.classList.contains(name)); });
    document.addEventListener('click', function (event) {
      var button = event.target.closest && event.target.closest('[data-pref]');
      if (!button) return;
      var name = button.getAttribute('data-pref');
      if (!KEYS[name]) return;
      var on = !root.classList.contains(name);
      write(name, on);
      apply(name, on);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', wire);
  else wire();
})();
