import type { ServerResponse } from 'node:http';
import { ANONYMOUS, type Principal } from '../services/core/principal.js';

/** Where auth leaves who is calling, for the controllers. */
export const PRINCIPAL = Symbol('gateway.principal');
type WithPrincipal = ServerResponse & { [PRINCIPAL]?: Principal };

export function setPrincipal(res: ServerResponse, principal: Principal): void {
  (res as WithPrincipal)[PRINCIPAL] = principal;
}

/** Who is calling, as auth found it (anonymous on a route without auth). */
export function principalOf(res: ServerResponse): Principal {
  return (res as WithPrincipal)[PRINCIPAL] ?? ANONYMOUS;
}
