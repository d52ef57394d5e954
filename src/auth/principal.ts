/** Who is calling: the admin token may do everything, an owner key acts for one owner id. */
export type Principal = Readonly<{ kind: 'admin' }> | Readonly<{ kind: 'owner'; owner: string }>;

/** Resolves a bearer token to a principal; undefined for an unknown token. Constant-time compare. */
export type Authenticate = (token: string) => Principal | undefined;
