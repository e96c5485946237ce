// Sign in and create an account. The server checks every field; its errors are shown under
// the field they name (error.details.field) and the field takes focus.

import { clearErrors, field, h, showFormError } from '../dom.js';

export function authView({ mode, api, session, notice, onSwitch, onDone }) {
  const isLogin = mode === 'login';
  const fields = isLogin
    ? [
      field({ label: 'Email', name: 'email', type: 'email', attrs: { autocomplete: 'email', required: true } }),
      field({ label: 'Password', name: 'password', type: 'password', attrs: { autocomplete: 'current-password', required: true } }),
    ]
    : [
      field({ label: 'Username', name: 'username', hint: '3–20 letters, digits or underscores.',
        attrs: { autocomplete: 'username', required: true, maxlength: '20', spellcheck: 'false', autocapitalize: 'off' } }),
      field({ label: 'Email', name: 'email', type: 'email', attrs: { autocomplete: 'email', required: true } }),
      field({ label: 'Password', name: 'password', type: 'password', hint: 'At least 8 characters.',
        attrs: { autocomplete: 'new-password', required: true } }),
      field({ label: 'Confirm password', name: 'confirmPassword', type: 'password',
        attrs: { autocomplete: 'new-password', required: true } }),
    ];
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit' },
    isLogin ? 'Sign in' : 'Create account');
  const form = h('form', { class: 'form auth-form', novalidate: true, 'aria-labelledby': 'auth-title' },
    ...fields,
    h('p', { class: 'form-error', role: 'alert' }),
    submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const data = Object.fromEntries(new FormData(form));
    submit.disabled = true;
    submit.textContent = isLogin ? 'Signing in…' : 'Creating account…';
    try {
      const reply = isLogin
        ? await api.login(data.email || '', data.password || '')
        : await api.register({
          username: data.username || '', email: data.email || '',
          password: data.password || '', confirmPassword: data.confirmPassword || '',
        });
      session.set(reply);
      onDone();
    } catch (err) {
      submit.disabled = false;
      submit.textContent = isLogin ? 'Sign in' : 'Create account';
      if (err.code === 'INVALID_CREDENTIALS') {
        form.querySelector('.form-error').textContent = 'That email and password do not match an account.';
        form.querySelector('[name="password"]').focus();
        return;
      }
      (showFormError(form, err) || form.querySelector('input'))?.focus();
    }
  });

  const el = h('div', { class: 'auth' },
    h('section', { class: 'auth-card', 'aria-labelledby': 'auth-title' },
      h('div', { class: 'auth-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'V'), 'VoiceFlow'),
      h('h1', { id: 'auth-title', text: isLogin ? 'Welcome back!' : 'Create an account' }),
      h('p', { class: 'auth-sub', text: isLogin
        ? 'Sign in to pick up where you left off.'
        : 'Join rooms and chat in real time.' }),
      notice ? h('p', { class: 'notice', role: 'status', text: notice }) : null,
      form,
      h('p', { class: 'auth-switch' },
        isLogin ? 'Need an account? ' : 'Already have an account? ',
        h('a', {
          href: isLogin ? '/register' : '/login',
          onclick: (e) => { e.preventDefault(); onSwitch(isLogin ? 'register' : 'login'); },
        }, isLogin ? 'Register' : 'Sign in'))));

  return {
    el,
    focus: () => form.querySelector('input')?.focus(),
  };
}
