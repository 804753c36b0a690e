import { useState, type FormEvent } from 'react';
import { ActionGroup, Alert, Button, Form, FormGroup, FormHelperText, HelperText, HelperTextItem, LoginPage as PfLoginPage, TextArea } from '@patternfly/react-core';
import { ApiError, get, token } from '../api';
import { navigate, useLocation } from '../router';

/** Paste a token (`flexmig auth token`, or the admin token `npm start` points at); kept for this tab only (sessionStorage). */
export function LoginPage({ reason, onLogin }: { reason?: string; onLogin: () => void }) {
  const { query } = useLocation();
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = value.trim();
    if (!t) return setError('paste a token first');
    setBusy(true);
    token.set(t);
    try {
      // a cheap read that every role may make: the token is checked by the service, as every call is
      await get('/api/v1/clusters?limit=1');
      onLogin();
      const next = query.get('next');
      navigate(next && next.startsWith('/') && next !== '/login' ? next : '/clusters');
    } catch (err) {
      token.clear();
      setError(err instanceof ApiError ? `${err.message} (${err.status} ${err.code})` : `cannot reach the API: ${String(err)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <PfLoginPage loginTitle="Log in to flexmig" textContent="Live migration of running VMs across hosts of different CPU generations.">
      {(error ?? reason) && <Alert variant="danger" isInline title={error ? 'The token was not accepted' : 'You were logged out'}>{error ?? reason}</Alert>}
      <Form onSubmit={submit}>
        <FormGroup label="Bearer token" isRequired fieldId="token">
          <TextArea id="token" name="token" value={value} onChange={(_e, v) => setValue(v)} rows={4} resizeOrientation="vertical" aria-label="bearer token" autoFocus />
          <FormHelperText>
            <HelperText>
              <HelperTextItem>The contents of .flexmig/auth/operator.token (or admin, viewer), which `npx flexmig auth init` writes and `npm start` points at. It stays in this tab only.</HelperTextItem>
            </HelperText>
          </FormHelperText>
        </FormGroup>
        <ActionGroup>
          <Button type="submit" variant="primary" isBlock isLoading={busy} isDisabled={busy}>
            Log in
          </Button>
        </ActionGroup>
      </Form>
    </PfLoginPage>
  );
}
