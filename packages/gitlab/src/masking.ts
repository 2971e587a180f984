/**
 * GitLab's rules for masked CI/CD variables, checked before anything is sent: a value GitLab
 * cannot mask is refused by the API ("Variables value is invalid"), and the tempting fallback of
 * storing it unmasked would print the token in every job log. So refbridge refuses it itself,
 * says exactly why, and never echoes the value.
 *
 * GitLab (`Ci::Maskable`) applies `\A[a-zA-Z0-9_+=/@:.~-]{8,}\z` to masked variables, and newer
 * servers a looser `\A\S{8,}\z` to masked *raw* ones (behind a feature flag on some versions).
 * refbridge checks the strict rule, which every GitLab version accepts, so a bootstrap that
 * works on one instance works on all of them.
 */

/** Characters GitLab can mask: the Base64 alphabets (RFC 4648, standard and URL-safe) plus `@ : . ~`. */
const MASKABLE_CHAR = /^[A-Za-z0-9_+=/@:.~-]$/;
export const MASKABLE_MIN_LENGTH = 8;

/** Why a value cannot be masked; an empty list means it can. Never contains the value itself. */
export function maskingProblems(value: string): string[] {
  const problems: string[] = [];
  const length = [...value].length;
  if (length < MASKABLE_MIN_LENGTH) {
    problems.push(
      `it is ${length} character${length === 1 ? '' : 's'} long and GitLab needs at least ${MASKABLE_MIN_LENGTH}`,
    );
  }
  let whitespace = false;
  let other = 0;
  for (const ch of value) {
    if (/\s/u.test(ch)) whitespace = true;
    else if (!MASKABLE_CHAR.test(ch)) other += 1;
  }
  if (whitespace) problems.push('it contains whitespace or line breaks');
  if (other > 0) {
    // Count, not list: naming the characters would reveal part of the secret in CI logs.
    problems.push(`it contains ${other} character${other === 1 ? '' : 's'} outside A-Z a-z 0-9 and + / = @ : . ~ - _`);
  }
  return problems;
}

export function isMaskable(value: string): boolean {
  return maskingProblems(value).length === 0;
}

/** CI/CD variable keys: GitLab allows at most 255 of `[A-Za-z0-9_]`. */
export function variableKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'the name is empty';
  if (key.length > 255) return 'the name is longer than 255 characters';
  if (!/^[A-Za-z0-9_]+$/.test(key)) return 'the name may contain only letters, digits and _';
  return undefined;
}
