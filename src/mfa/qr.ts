
/** QR renderings of an otpauth URI: 300×300 px for screens (the source document's size), text for terminals. */
export const QR_SIZE_PX = 300;

export interface QrImages {
  /** `<svg …>` markup, 300×300. */
  readonly svg: string;
  /** `data:image/png;base64,…`, 300×300. */
  readonly pngDataUrl: string;
}

// Loaded with the first enrolment: the running gateway draws no QR code otherwise.
const qrcode = async (): Promise<typeof import('qrcode')> => (await import('qrcode')).default;

export async function renderQr(uri: string): Promise<QrImages> {
  const QRCode = await qrcode();
  const options = { width: QR_SIZE_PX, margin: 2, errorCorrectionLevel: 'M' as const };
  const [svg, pngDataUrl] = await Promise.all([QRCode.toString(uri, { ...options, type: 'svg' }), QRCode.toDataURL(uri, { ...options, type: 'image/png' })]);
  return { svg, pngDataUrl };
}

/** For the CLI: block characters that a terminal shows as a scannable code. */
export async function renderTerminalQr(uri: string): Promise<string> {
  return (await qrcode()).toString(uri, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
}
