# Runs of lm-evaluation-harness (config `lm_eval:`) join as models: each listed task of a log
# is read, graded as lm-eval graded it and checked against lm-eval's metrics, instead of being
# prepared and collected (calibbench.lmeval.workflow). From the graded table on, its jobs are
# the same as every model's.


# The task's items and information, from the first log that holds the task.
rule lm_eval_task:
    wildcard_constraints:
        task=one_of(LM_EVAL_TASKS),
    output:
        task_items=f"{RESULTS}/tasks/{{task}}/items.parquet",
        info=f"{RESULTS}/tasks/{{task}}/task.json",
    params:
        path=lambda wc: LM_EVAL[LM_EVAL_TASKS[wc.task]]["path"],
        name=lambda wc: lmeval.log_task(wc.task),
    log:
        f"{LOGS}/lm_eval/{{task}}.log",
    shell:
        "calibbench lm-eval-task {params.path:q} --task {params.name:q}"
        " --items {output.task_items} --info {output.info} > {log} 2>&1"


# The model's graded table, and the manifest that stands for its collection.
rule lm_eval_graded:
    wildcard_constraints:
        model=one_of(LM_EVAL),
        task=one_of(LM_EVAL_TASKS),
    output:
        graded=f"{RESULTS}/graded/{{model}}/{{task}}.parquet",
        manifest=f"{RESULTS}/collect/{{model}}/{{task}}/answers/manifest.json",
    params:
        path=lambda wc: LM_EVAL[wc.model]["path"],
        name=lambda wc: lmeval.log_task(wc.task),
    log:
        f"{LOGS}/lm_eval/{{model}}/{{task}}.log",
    shell:
        "calibbench lm-eval-task {params.path:q} --task {params.name:q}"
        " --graded {output.graded} --manifest {output.manifest} > {log} 2>&1"
