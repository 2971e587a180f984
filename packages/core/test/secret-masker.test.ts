import { describe, expect, it } from '@jest/globals';
import { SecretMasker } from '@refbridge/core';

describe('SecretMasker', () => {
  it('masks raw tokens and the Basic-auth forms git and HTTP use', () => {
    const m = new SecretMasker();
    m.add('glpat-abcdefghijklmnop');
    const b64 = Buffer.from('oauth2:glpat-abcdefghijklmnop').toString('base64');
    expect(m.mask(`token glpat-abcdefghijklmnop and header basic ${b64}`)).toBe('token *** and header basic ***');
  });

  it('ignores empty and very short values that would mask ordinary text', () => {
    const m = new SecretMasker();
    m.add('');
    m.add('ab');
    expect(m.size).toBe(0);
    expect(m.mask('ab cd')).toBe('ab cd');
  });

  it('tells listeners about every form, including ones registered before they subscribed', () => {
    const m = new SecretMasker();
    m.add('secret-value-1');
    const seen: string[] = [];
    m.onSecret((s) => seen.push(s));
    expect(seen).toContain('secret-value-1');
    m.addBasicAuth('alice', 'secret-value-1');
    expect(seen).toContain(Buffer.from('alice:secret-value-1').toString('base64'));
  });
});
