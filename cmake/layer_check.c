/* The program of the layer_* targets (CMakeLists.txt): never run, it only
 * makes the linker resolve every symbol of a layer against the layers below
 * it, so that a call into a higher layer fails the build. */
int main(void) { return 0; }
