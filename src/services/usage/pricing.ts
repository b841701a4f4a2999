/** A price table's entry: per million tokens, in the table's currency. */
export interface Price {
  inputPerMTok: number;
  outputPerMTok: number;
}

/**
 * The cost of a request by the price table: the served model's entry, else the asked model's; 0 when
 * neither is priced. Own entries only: a model named `constructor` has no price.
 */
export function costOf(
  pricing: Readonly<Record<string, Price>>,
  usage: { promptTokens: number; completionTokens: number; servedModel?: string | undefined },
  askedModel: string,
): number {
  const priced = (id: string | undefined) =>
    id !== undefined && Object.hasOwn(pricing, id) ? pricing[id] : undefined;
  const price = priced(usage.servedModel) ?? priced(askedModel);
  if (!price) return 0;
  return (usage.promptTokens * price.inputPerMTok + usage.completionTokens * price.outputPerMTok) / 1_000_000;
}
