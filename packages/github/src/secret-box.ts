import sodium from 'libsodium-wrappers';

/**
 * Seals a secret for GitHub Actions with the repo's public key: libsodium's anonymous sealed box,
 * base64 in the ORIGINAL (padded, `+/`) variant both ways, as GitHub's "encrypting secrets for the
 * REST API" guide does. Only GitHub's private key can open it.
 */
export async function sealSecret(publicKeyBase64: string, value: string): Promise<string> {
  await sodium.ready;
  const key = sodium.from_base64(publicKeyBase64, sodium.base64_variants.ORIGINAL);
  const sealed = sodium.crypto_box_seal(sodium.from_string(value), key);
  return sodium.to_base64(sealed, sodium.base64_variants.ORIGINAL);
}
