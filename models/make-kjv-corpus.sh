#!/bin/sh
# Builds kjv.txt, the training text of models/clocklm-kjv.gguf, from Debian's bible-kjv-text package
# (apt-get install bible-kjv-text, which brings the `bible` reader from bible-kjv).
# One chapter per line, verses joined by single spaces, references ("Ge1:1") removed.
set -e
out=${1:-kjv.txt}
bible -f "Gen1:1-Rev22:21" |
  awk '{ ref = $1; sub(/:.*/, "", ref); $1 = ""; sub(/^ /, "");
         if (NR > 1) printf (ref != prev ? "\n" : " ");
         printf "%s", $0; prev = ref }
       END { printf "\n" }' > "$out"
sha256sum /usr/lib/bible.data "$out"
