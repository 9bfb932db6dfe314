#!/bin/sh
# Makes the default prompts of the app role: OUT/default/en/{welcome,menu,invalid,
# voicemail-greeting,goodbye,beep}.wav, 8 kHz mono 16-bit PCM. Speech from espeak-ng + sox;
# without espeak-ng each prompt is a short sox tone; without sox, python3 writes the tones.
# Never fails the build: with none of them it prints a warning and makes nothing.
set -u
OUT="${1:?usage: make_sounds.sh OUT_DIR}"
DIR="$OUT/default/en"
mkdir -p "$DIR"
TMP="$DIR/.tmp.$$"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

say() {  # name text tone_hz
  name=$1 text=$2 hz=$3
  if command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1; then
    if espeak-ng -v en -s 150 -w "$TMP/$name.wav" "$text" 2>/dev/null &&
       sox -q "$TMP/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$DIR/$name.wav" 2>/dev/null; then
      return 0
    fi
  fi
  tone "$name" "$hz" 1.0
}

tone() {  # name hz seconds
  name=$1 hz=$2 secs=$3
  if command -v sox >/dev/null 2>&1 &&
     sox -q -n -r 8000 -c 1 -b 16 -e signed-integer "$DIR/$name.wav" synth "$secs" sine "$hz" vol 0.5 2>/dev/null; then
    return 0
  fi
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$DIR/$name.wav" "$hz" "$secs" <<'PY'
import math, struct, sys, wave
path, hz, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
n = int(8000 * secs)
with wave.open(path, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(16000 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)))
PY
    return 0
  fi
  echo "make_sounds.sh: warning: neither espeak-ng, sox nor python3: no $name.wav" >&2
}

say welcome "Welcome to evosip. This is a recorded announcement. Goodbye." 440
say menu "Please press a digit to choose where your call goes." 523
say invalid "Sorry, that is not a valid choice." 330
say voicemail-greeting "The person you are calling is not available. Please leave a message after the tone." 392
say goodbye "Goodbye." 262
tone beep 1000 0.3
exit 0
