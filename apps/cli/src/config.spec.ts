import { resolveConnection } from './config';

const files = (map: Record<string, string>) => (f: string) => {
  if (f in map) return map[f];
  throw Object.assign(new Error(`ENOENT: no such file ${f}`), { code: 'ENOENT' });
};

describe('connection settings', () => {
  const home = { XDG_CONFIG_HOME: '/cfg' };
  const defaultFile = '/cfg/flexmig/config.yaml';

  it('given nothing, then the default URL (the console) and no token', () => {
    expect(resolveConnection({}, home, files({}))).toMatchObject({ url: 'http://127.0.0.1:3000', token: undefined, source: { url: 'the default' } });
  });

  it('given flags, env and a config file, then flags beat env, env beats the file', () => {
    const read = files({ [defaultFile]: 'url: http://file:3000\ntoken: from-file\n' });
    expect(resolveConnection({}, home, read)).toMatchObject({ url: 'http://file:3000', token: 'from-file' });
    const env = { ...home, FLEXMIG_URL: 'http://env:3000/', FLEXMIG_TOKEN: 'from-env' };
    expect(resolveConnection({}, env, read)).toMatchObject({ url: 'http://env:3000', token: 'from-env', source: { url: 'FLEXMIG_URL', token: 'FLEXMIG_TOKEN' } });
    expect(resolveConnection({ url: 'http://flag:1', token: 'from-flag' }, env, read)).toMatchObject({ url: 'http://flag:1', token: 'from-flag' });
  });

  it('given --config (or FLEXMIG_CONFIG) with a tokenFile relative to it, then the token is read from that file', () => {
    const read = files({ '/etc/fm.yaml': 'url: https://fm.example\ntokenFile: auth/operator.token\ntimeoutMs: 5000\n', '/etc/auth/operator.token': 'tok\n' });
    expect(resolveConnection({ config: '/etc/fm.yaml' }, home, read)).toMatchObject({ url: 'https://fm.example', token: 'tok', timeoutMs: 5000 });
    expect(resolveConnection({}, { ...home, FLEXMIG_CONFIG: '/etc/fm.yaml' }, read).token).toBe('tok');
  });

  it('given a named config file that is missing, invalid YAML, or has unknown keys, then a usage error naming the file', () => {
    const usage = (text: string) => expect.objectContaining({ exitCode: 2, message: expect.stringContaining(text) });
    expect(() => resolveConnection({ config: '/nope.yaml' }, home, files({}))).toThrow(usage('cannot read config file /nope.yaml'));
    expect(() => resolveConnection({}, home, files({ [defaultFile]: 'url: [' }))).toThrow(usage(`config file ${defaultFile} is not valid YAML`));
    expect(() => resolveConnection({}, home, files({ [defaultFile]: 'server: http://x\n' }))).toThrow(usage('keys are url, token, tokenFile, timeoutMs'));
    expect(() => resolveConnection({}, home, files({ [defaultFile]: 'url: ftp://x\n' }))).toThrow(usage('url: an http:// or https:// URL'));
  });

  it('given a URL that is not http(s) from the environment, then a usage error saying where it came from', () => {
    expect(() => resolveConnection({}, { ...home, FLEXMIG_URL: 'localhost:3000' }, files({}))).toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringContaining('from FLEXMIG_URL') }));
  });
});
