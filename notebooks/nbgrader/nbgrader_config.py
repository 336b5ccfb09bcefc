"""nbgrader configuration for Rust assignments run by the rustmeter kernel.

This folder is an nbgrader course directory: run nbgrader's commands from here
(`nbgrader generate_assignment async-exercises`, …). See docs/classroom.md, "Graded
assignments with nbgrader".
"""
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "rustmeter-async"

# nbgrader picks the stub by the notebook's kernelspec language ("rust"). A `todo!()` as
# the body of the function the learner writes compiles, so the rest of the notebook still
# runs; calling it panics, which fails that exercise's tests and only them.
c.ClearSolutions.code_stub = {"rust": "// YOUR CODE HERE\ntodo!()"}
# The delimiters are matched anywhere in a line, so `// BEGIN SOLUTION` works as is.
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"

# autograde runs each submission in a fresh rustmeter kernel. nbgrader's defaults (60 s to
# start, 30 s per cell) are too short for Rust: a cold kernel can take a minute to start on
# a busy machine, and the setup cell's `:dep tokio` compiles tokio when the dependency cache
# does not hold it yet (a minute or more on 2 cores).
c.Execute.startup_timeout = 180
# Per cell. A cell still running after it (an endless loop) is interrupted and recorded as
# an error (nbgrader's default interrupt_on_timeout); lower it once the cache is warm.
c.Execute.timeout = 600
