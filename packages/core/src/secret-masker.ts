/**
 * Keeps every secret refbridge handles and removes them from any text before it is shown.
 * Git and HTTP see tokens in derived forms too (Basic auth is base64 of `user:token`), so each
 * secret is registered with the forms a leak would take.
 */
export class SecretMasker {
  private readonly secrets = new Set<string>();
  private readonly listeners: ((secret: string) => void)[] = [];

  /** Register a token; also masks its Basic-auth encodings for the user names git uses. */
  add(secret: string | undefined): void {
    if (!secret || secret.length < 4) return;
    const forms = [secret, encodeURIComponent(secret)];
    for (const user of ['x-access-token', 'oauth2', 'git', 'token']) {
      forms.push(Buffer.from(`${user}:${secret}`).toString('base64'));
    }
    forms.push(Buffer.from(secret).toString('base64'));
    for (const form of forms) {
      if (!this.secrets.has(form)) {
        this.secrets.add(form);
        for (const l of this.listeners) l(form);
      }
    }
  }

  /** Mask a Basic-auth value built for a user name not in the default list. */
  addBasicAuth(user: string, secret: string): void {
    this.add(secret);
    const form = Buffer.from(`${user}:${secret}`).toString('base64');
    if (!this.secrets.has(form)) {
      this.secrets.add(form);
      for (const l of this.listeners) l(form);
    }
  }

  /** Called for every form registered now or later (the Action forwards them to core.setSecret). */
  onSecret(listener: (secret: string) => void): void {
    this.listeners.push(listener);
    for (const s of this.secrets) listener(s);
  }

  mask(text: string): string {
    let out = text;
    // Longest first so a secret that contains another is replaced whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) {
      if (out.includes(s)) out = out.split(s).join('***');
    }
    return out;
  }

  get size(): number {
    return this.secrets.size;
  }
}
