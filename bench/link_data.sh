# Sourced by the benchmark scripts (from the repository root).
# link_data NAME SOURCE HINT [FILE]: link the folder SOURCE as input/NAME (unless input/NAME exists),
# or stop with one error line when SOURCE (or SOURCE/FILE) is missing; HINT says what SOURCE must hold.
link_data() {
    local name=$1 source=$2 hint=$3 file=${4:-}
    if [ ! -e "$source/$file" ]; then
        echo "error: $source${file:+/$file} not found (SOURCE=<$hint>)" >&2
        exit 2
    fi
    mkdir -p input reports
    [ -e "input/$name" ] || ln -s "$(cd "$source" && pwd)" "input/$name"
}
