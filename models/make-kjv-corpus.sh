#!/bin/sh
# Builds the training text of models/clocklm-kjv.gguf from Debian's bible-kjv-text package
# (apt-get install bible-kjv-text, which brings the `bible` reader from bible-kjv), in DIR (default: .):
#   kjv.txt        all 1,189 chapters, one per line, verses joined by single spaces, references ("Ge1:1") removed
#   kjv-train.txt  the same without the book of Ruth (1,185 chapters): the training text
#   ruth.txt       Ruth's 4 chapters: the held-out text for validation
set -e
dir=${1:-.}
chapters="$dir/kjv-chapters.tmp"
bible -f "Gen1:1-Rev22:21" |
  awk '{ ref = $1; sub(/:.*/, "", ref); $1 = ""; sub(/^ /, "");
         if (ref != prev) { if (NR > 1) printf "\n"; printf "%s\t", ref } else printf " ";
         printf "%s", $0; prev = ref }
       END { printf "\n" }' > "$chapters"
cut -f2- "$chapters" > "$dir/kjv.txt"
grep -v '^Ruth[0-9]' "$chapters" | cut -f2- > "$dir/kjv-train.txt"
grep '^Ruth[0-9]' "$chapters" | cut -f2- > "$dir/ruth.txt"
rm "$chapters"
sha256sum /usr/lib/bible.data "$dir/kjv.txt" "$dir/kjv-train.txt" "$dir/ruth.txt"
